"""Built-in datasets: shipped files, fixed splits, registry and errors."""

from __future__ import annotations

import hashlib
from collections import Counter

import numpy as np
import pandas as pd
import pytest

from audit.io import builtin
from audit.io.builtin import SPLITS, get_dataset, list_datasets, load_dataset, load_identity_lists
from audit.core.dataset import Dataset
from audit._util.errors import AuditInputError

NAMES = ("digits", "adult", "compas", "reviews")

# Rows per split; they only change if a shipped file, a filter, the seed or the fractions change.
EXPECTED_ROWS = {
    "digits": {"train": 1258, "validation": 270, "test": 269, "all": 1797},
    "adult": {"train": 27677, "validation": 4884, "test": 16281, "all": 48842},
    "compas": {"train": 4320, "validation": 927, "test": 925, "all": 6172},
    "reviews": {"train": 7048, "validation": 1512, "test": 1510, "all": 10070},
}

SPEC = {
    "digits": ("image", "digit", tuple(str(d) for d in range(10)), ()),
    "adult": ("tabular", "income", ("<=50K", ">50K"), ("sex", "race", "age")),
    "compas": ("tabular", "two_year_recid", ("0", "1"), ("race", "sex", "age_cat")),
    "reviews": ("text", "sentiment", ("negative", "positive"), ()),
}


def _row_keys(ds: Dataset) -> list[str]:
    """One key per row (inputs, sensitive attributes and label), to compare splits as multisets."""
    if isinstance(ds.inputs, pd.DataFrame):
        inputs = [str(h) for h in pd.util.hash_pandas_object(ds.inputs, index=False).to_numpy()]
    elif ds.modality == "text":
        inputs = list(ds.inputs)
    else:
        inputs = [hashlib.sha256(np.ascontiguousarray(row).tobytes()).hexdigest() for row in ds.inputs]
    if len(ds.sensitive.columns):
        sens = [str(h) for h in pd.util.hash_pandas_object(ds.sensitive, index=False).to_numpy()]
    else:
        sens = [""] * len(ds)
    return [f"{i}\x00{s}\x00{y}" for i, s, y in zip(inputs, sens, ds.labels.tolist())]


@pytest.mark.parametrize("name", NAMES)
def test_every_split_loads_with_the_specified_shape(name):
    modality, target, classes, sensitive = SPEC[name]
    for split in SPLITS:
        ds = load_dataset(name, split)
        assert len(ds) == EXPECTED_ROWS[name][split], split
        assert ds.name == name
        assert ds.source == {"builtin": name, "split": split}
        assert ds.modality == modality
        assert ds.target == target
        assert ds.classes == classes
        assert ds.sensitive_names == sensitive
        assert ds.labels.dtype == np.int64
        assert ds.labels.min() >= 0 and ds.labels.max() < len(classes)
        assert not ds.sensitive.isna().any().any()
        if isinstance(ds.inputs, pd.DataFrame):
            assert not ds.inputs.isna().any().any()
            for col in sensitive:  # the inputs keep the sensitive columns too
                assert ds.inputs[col].equals(ds.sensitive[col])
        elif modality == "text":
            assert all(isinstance(t, str) and t == t.strip() and t for t in ds.inputs)
        else:
            assert np.isfinite(ds.inputs).all()


@pytest.mark.parametrize("name", NAMES)
def test_splits_are_disjoint_stratified_and_cover_all(name):
    parts = [load_dataset(name, s) for s in ("train", "validation", "test")]
    full = load_dataset(name, "all")
    assert sum(len(p) for p in parts) == len(full)
    assert Counter(k for p in parts for k in _row_keys(p)) == Counter(_row_keys(full))
    if name in ("digits", "reviews"):  # no repeated rows there, so content must not overlap at all
        keys = [set(_row_keys(p)) for p in parts]
        assert len(set().union(*keys)) == len(full)
    if name != "adult":  # adult's test split is the original adult.test, not a stratified draw
        overall = np.bincount(full.labels) / len(full)
        for p in parts:
            assert np.abs(np.bincount(p.labels, minlength=len(overall)) / len(p) - overall).max() < 0.01


@pytest.mark.parametrize("name", NAMES)
def test_loading_is_deterministic_and_returns_fresh_objects(name):
    first = load_dataset(name, "test")
    builtin._splits.cache_clear()  # parse the file and split again
    second = load_dataset(name, "test")
    assert first.sha256 == second.sha256
    third = load_dataset(name, "test")
    assert third is not second and third.inputs is not second.inputs and third.labels is not second.labels
    third.labels[:] = 0  # mutating one result must not reach the cache
    assert load_dataset(name, "test").sha256 == second.sha256


def test_default_split_is_test():
    assert load_dataset("compas").source == {"builtin": "compas", "split": "test"}
    assert len(load_dataset("compas")) == len(load_dataset("compas", "test"))


def test_digits_images():
    ds = load_dataset("digits", "all")
    assert ds.inputs.dtype == np.float32 and ds.inputs.shape == (1797, 1, 8, 8)
    assert ds.inputs.min() == 0.0 and ds.inputs.max() == 1.0
    assert len(ds.sensitive.columns) == 0


def test_adult_columns_and_labels():
    test = load_dataset("adult", "test")
    assert len(test) == 16281
    assert len(load_dataset("adult", "train")) + len(load_dataset("adult", "validation")) == 32561
    assert not any(test.classes[y].endswith(".") for y in np.unique(test.labels))
    assert np.bincount(test.labels).tolist() == [12435, 3846]
    assert list(test.inputs.columns) == [
        "age", "workclass", "education-num", "marital-status", "occupation", "relationship", "race", "sex",
        "capital-gain", "capital-loss", "hours-per-week", "native-country",
    ]
    assert "income" not in test.inputs.columns
    full = load_dataset("adult", "all")
    for col in full.inputs.columns:
        if not pd.api.types.is_numeric_dtype(full.inputs[col]):
            values = full.inputs[col].astype(str)
            assert (values == values.str.strip()).all(), col
    assert (full.inputs["workclass"] == "?").sum() > 0  # missing values stay as their own category
    assert set(full.sensitive["sex"]) == {"Male", "Female"}


def test_compas_filter_and_columns():
    full = load_dataset("compas", "all")
    assert len(full) == 6172  # ProPublica's filter of the 7,214 rows of compas-scores-two-years.csv
    assert list(full.inputs.columns) == [
        "age", "c_charge_degree", "priors_count", "juv_fel_count", "juv_misd_count", "juv_other_count",
        "race", "sex", "age_cat",
    ]
    assert set(full.inputs["c_charge_degree"]) == {"F", "M"}
    assert np.bincount(full.labels).tolist() == [3363, 2809]


def test_reviews_threshold_and_text():
    full = load_dataset("reviews", "all")
    assert builtin.REVIEWS_MIN_ABS_SCORE == 0.5
    assert len(full) == 10070
    assert len(set(full.texts)) == len(full)
    assert any("''" in t for t in full.texts)  # the source's quotes are kept as they are
    assert any("Château" in t for t in full.texts)  # read as UTF-8


def test_registry():
    assert [d.name for d in list_datasets()] == list(NAMES)
    for d in list_datasets():
        modality, target, _, sensitive = SPEC[d.name]
        assert get_dataset(d.name) is d
        assert (d.modality, d.target, d.sensitive) == (modality, target, sensitive)
        assert d.description and "\n" not in d.description
        assert d.source and "\n" not in d.source


@pytest.mark.parametrize("bad", ["mnist", "", "Adult"])
def test_unknown_dataset(bad):
    message = f"unknown dataset {bad!r}; built-in datasets are: digits, adult, compas, reviews"
    with pytest.raises(AuditInputError) as info:
        get_dataset(bad)
    assert str(info.value) == message
    with pytest.raises(AuditInputError) as info:
        load_dataset(bad, "test")
    assert str(info.value) == message


@pytest.mark.parametrize("bad", ["dev", "val", "TEST", ""])
def test_unknown_split(bad):
    with pytest.raises(AuditInputError, match="splits are: train, validation, test, all") as info:
        load_dataset("adult", bad)
    assert repr(bad) in str(info.value)


def test_identity_lists():
    names = load_identity_lists("names")
    assert {"men", "women", "last"} <= set(names) and "Michael" in names["men"]
    basic = load_identity_lists("basic")
    assert {"male", "female", "nationality", "religion"} <= set(basic)
    with pytest.raises(AuditInputError, match="lists are: names, basic"):
        load_identity_lists("races")
