"""Built-in datasets, shipped inside the package and loaded offline.

    digits   8x8 handwritten digits (images), bundled with scikit-learn
    adult    UCI Adult census income (table), sensitive: sex, race, age
    compas   ProPublica COMPAS two-year recidivism (table), sensitive: race, sex, age_cat
    reviews  movie review snippets with human sentiment (text)

Every split is fixed: the same rows on every call and every machine (seeded,
stratified by label). Provenance, licenses and how each file under `files/` was
prepared are in `files/LICENSES.md`.
"""

from __future__ import annotations

import csv
import gzip
import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from audit.core.dataset import Dataset
from audit._util.errors import AuditInputError

FILES = Path(__file__).with_name("files")

SPLITS = ("train", "validation", "test", "all")
SPLIT_SEED = 0
SPLIT_FRACTIONS = (0.70, 0.15, 0.15)  # train, validation, test (digits, compas, reviews)
ADULT_VALIDATION_FRACTION = 0.15  # of adult.data; adult.test is the test split

#: Reviews whose mean human score (-4..4) is within this distance of zero are dropped
#: as neither clearly positive nor clearly negative; of 10,605 sentences 10,072 are kept
#: (10,070 once two repeated sentences are dropped).
REVIEWS_MIN_ABS_SCORE = 0.5

ADULT_COLUMNS = (
    "age", "workclass", "fnlwgt", "education", "education-num", "marital-status", "occupation",
    "relationship", "race", "sex", "capital-gain", "capital-loss", "hours-per-week", "native-country", "income",
)
ADULT_DROPPED = ("fnlwgt", "education")  # a sampling weight; a duplicate of education-num
COMPAS_INPUTS = (
    "age", "c_charge_degree", "priors_count", "juv_fel_count", "juv_misd_count", "juv_other_count",
    "race", "sex", "age_cat",
)

SplitTable = dict[str, Dataset]


@dataclass(frozen=True)
class BuiltinDataset:
    name: str
    modality: str
    target: str
    sensitive: tuple[str, ...]
    description: str
    source: str
    _load: Callable[[], SplitTable] = field(repr=False, compare=False)


# -- loaders: each returns every split of one dataset, parsed once per process ---------------


def _file(name: str) -> Path:
    path = FILES / name
    if not path.is_file():
        raise FileNotFoundError(f"built-in data file {path} is missing; the audit package is installed incompletely")
    return path


def _seeded_splits(full: Dataset, fractions=SPLIT_FRACTIONS) -> SplitTable:
    train, validation, test = full.split(list(fractions), seed=SPLIT_SEED)
    return {"train": train, "validation": validation, "test": test, "all": full}


def _load_digits() -> SplitTable:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = (np.asarray(bunch.images, dtype=np.float32) / np.float32(16.0))[:, None, :, :]
    labels = np.asarray(bunch.target, dtype=np.int64)
    full = Dataset(inputs=np.ascontiguousarray(images), labels=labels, classes=tuple(str(d) for d in range(10)),
                   modality="image", sensitive=pd.DataFrame(), name="digits", target="digit")
    return _seeded_splits(full)


def _read_adult(filename: str, *, skiprows: int) -> pd.DataFrame:
    frame = pd.read_csv(_file(filename), header=None, names=list(ADULT_COLUMNS), skiprows=skiprows,
                        skipinitialspace=True, keep_default_na=False, na_values=[], encoding="ascii")
    for col in frame.columns:
        if not pd.api.types.is_numeric_dtype(frame[col]):
            frame[col] = frame[col].str.strip()
    # adult.test writes its labels as "<=50K." and ">50K."
    frame["income"] = frame["income"].str.removesuffix(".")
    return frame


def _load_adult() -> SplitTable:
    train_part = _read_adult("adult.data.gz", skiprows=0)
    test_part = _read_adult("adult.test.gz", skiprows=1)  # its first line is a comment
    frame = pd.concat([train_part, test_part], ignore_index=True).drop(columns=list(ADULT_DROPPED))
    full = Dataset.from_dataframe(frame, target="income", sensitive=("sex", "race", "age"),
                                  classes=("<=50K", ">50K"), name="adult")
    n_train = len(train_part)
    train, validation = full.subset(np.arange(n_train)).split(
        [1 - ADULT_VALIDATION_FRACTION, ADULT_VALIDATION_FRACTION], seed=SPLIT_SEED)
    test = full.subset(np.arange(n_train, len(full)))
    return {"train": train, "validation": validation, "test": test, "all": full}


def _load_compas() -> SplitTable:
    # Shipped already filtered (ProPublica's filter) and cut to the columns used; see files/LICENSES.md.
    frame = pd.read_csv(_file("compas-scores-two-years.filtered.csv.gz"), keep_default_na=False, na_values=[],
                        encoding="utf-8")
    frame = frame[[*COMPAS_INPUTS, "two_year_recid"]]
    full = Dataset.from_dataframe(frame, target="two_year_recid", sensitive=("race", "sex", "age_cat"),
                                  classes=("0", "1"), name="compas")
    return _seeded_splits(full)


def _load_reviews() -> SplitTable:
    frame = pd.read_csv(_file("movieReviewSnippets_GroundTruth.txt.gz"), sep="\t", header=None,
                        names=["id", "score", "text"], quoting=csv.QUOTE_NONE, encoding="utf-8",
                        keep_default_na=False, na_values=[], dtype={"id": np.int64, "score": np.float64, "text": str})
    frame["text"] = frame["text"].str.strip()
    frame = frame[(frame["score"].abs() >= REVIEWS_MIN_ABS_SCORE) & (frame["text"] != "")]
    # Two sentences occur twice (same sign both times); one copy each keeps the splits free of overlap.
    frame = frame.drop_duplicates(subset="text", keep="first")
    frame = pd.DataFrame({
        "text": frame["text"].to_numpy(dtype=object),
        "sentiment": np.where(frame["score"].to_numpy() > 0, "positive", "negative"),
    })
    full = Dataset.from_dataframe(frame, target="sentiment", text_column="text", classes=("negative", "positive"),
                                  name="reviews")
    return _seeded_splits(full)


_REGISTRY: tuple[BuiltinDataset, ...] = (
    BuiltinDataset(
        name="digits", modality="image", target="digit", sensitive=(),
        description="1,797 8x8 grayscale handwritten digits (0-9), scaled to [0, 1]",
        source="UCI optical recognition of handwritten digits, as bundled with scikit-learn (BSD-3-Clause)",
        _load=_load_digits,
    ),
    BuiltinDataset(
        name="adult", modality="tabular", target="income", sensitive=("sex", "race", "age"),
        description="1994 US census records: does a person earn more than $50K a year",
        source="UCI Machine Learning Repository, Adult, Becker & Kohavi 1996 (CC BY 4.0)",
        _load=_load_adult,
    ),
    BuiltinDataset(
        name="compas", modality="tabular", target="two_year_recid", sensitive=("race", "sex", "age_cat"),
        description="Broward County defendants scored by COMPAS: re-offended within two years (ProPublica filter)",
        source="ProPublica compas-analysis, Angwin et al. 2016 (compas-scores-two-years.csv)",
        _load=_load_compas,
    ),
    BuiltinDataset(
        name="reviews", modality="text", target="sentiment", sensitive=(),
        description=("movie review sentences, positive or negative by mean human rating"
                     f" (|score| >= {REVIEWS_MIN_ABS_SCORE})"),
        source="VADER ground truth, Hutto & Gilbert ICWSM 2014 (MIT), sentences from Pang & Lee",
        _load=_load_reviews,
    ),
)
_BY_NAME = {d.name: d for d in _REGISTRY}


@lru_cache(maxsize=None)
def _splits(name: str) -> SplitTable:
    return _BY_NAME[name]._load()


# -- public API ---------------------------------------------------------------------------


def list_datasets() -> list[BuiltinDataset]:
    """The built-in datasets, in a stable order: digits, adult, compas, reviews."""
    return list(_REGISTRY)


def get_dataset(name: str) -> BuiltinDataset:
    try:
        return _BY_NAME[name]
    except (KeyError, TypeError):
        raise AuditInputError(
            f"unknown dataset {name!r}; built-in datasets are: {', '.join(_BY_NAME)}"
        ) from None


def load_dataset(name: str, split: str = "test") -> Dataset:
    """One split ("train", "validation", "test" or "all") of a built-in dataset, as a fresh `Dataset`."""
    get_dataset(name)
    if split not in SPLITS:
        raise AuditInputError(f"unknown split {split!r} for dataset {name!r}; splits are: {', '.join(SPLITS)}")
    cached = _splits(name)[split]
    inputs = cached.inputs.copy()
    sensitive = cached.sensitive.copy()
    return replace(cached, inputs=inputs, labels=cached.labels.copy(), sensitive=sensitive, name=name,
                   source={"builtin": name, "split": split})


IDENTITY_LISTS = ("names", "basic")


def load_identity_lists(name: str) -> dict:
    """Word lists for counterfactual and template probes of text models (checklist, MIT).

    "names": first names by gender ("men", "women") and last names ("last");
    "basic": "male" and "female" (100 first names each, not words like "he" or "woman"), "first_name",
    "first_pronoun", "last_name", "country", "nationality", "city", "religion", "religion_adj", "sexual_adj".
    """
    if name not in IDENTITY_LISTS:
        raise AuditInputError(f"unknown identity word list {name!r}; lists are: {', '.join(IDENTITY_LISTS)}")
    with gzip.open(_file(f"identity/{name}.json.gz"), "rt", encoding="utf-8") as fh:
        return json.load(fh)


@dataclass(frozen=True)
class Synonyms:
    """A word's part of speech in WordNet (n, v, a or r) and its synonyms in that part of speech."""

    pos: str
    words: tuple[str, ...]


@lru_cache(maxsize=1)
def load_synonyms() -> dict[str, Synonyms]:
    """The WordNet 3.0 synonym table (files/wordnet_synonyms.tsv.gz; how it was built: files/LICENSES.md)."""
    with gzip.open(_file("wordnet_synonyms.tsv.gz"), "rt", encoding="utf-8") as fh:
        rows = (line.rstrip("\n").split("\t") for line in fh)
        return {word: Synonyms(pos, tuple(synonyms.split(","))) for word, pos, synonyms in rows}
