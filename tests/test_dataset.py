"""Dataset construction from frames, arrays and files, and its errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import audit
from audit.core.encoders import TabularEncoder, Tokenizer
from audit.io.sources import read_data


def frame(n=10):
    rng = np.random.default_rng(0)
    return pd.DataFrame({"x": rng.normal(size=n), "color": rng.choice(["red", "blue"], n),
                         "sex": rng.choice(["f", "m"], n), "y": rng.integers(0, 2, n)})


def test_sensitive_columns_are_copied_beside_inputs():
    data = audit.Dataset.from_dataframe(frame(), target="y", sensitive=["sex"])
    assert data.modality == "tabular" and data.classes == ("0", "1")
    assert list(data.sensitive.columns) == ["sex"]
    assert "y" not in data.inputs.columns
    encoder = TabularEncoder.fit(data, exclude=data.sensitive_names)
    assert "sex" not in encoder.columns
    assert encoder.feature_names() == ["x", "color=blue", "color=red"]
    np.testing.assert_array_equal(encoder.continuous_mask(), [True, False, False])


def test_tabular_encoder_standardizes_and_one_hot_encodes():
    data = audit.Dataset.from_dataframe(frame(50), target="y")
    encoder = TabularEncoder.fit(data)
    x = encoder.transform(data).numpy()
    assert x.shape == (50, 1 + 2 + 2)
    assert abs(x[:, 0].mean()) < 1e-6 and abs(x[:, 0].std() - 1) < 1e-5
    assert set(np.unique(x[:, 1:])) == {0.0, 1.0}
    assert (x[:, 1:3].sum(axis=1) == 1).all()
    again = TabularEncoder.from_dict(encoder.to_dict())
    np.testing.assert_array_equal(again.transform(data).numpy(), x)


def test_unseen_category_encodes_as_all_zeros():
    data = audit.Dataset.from_dataframe(frame(20), target="y")
    encoder = TabularEncoder.fit(data)
    new = frame(3)
    new.loc[0, "color"] = "green"
    x = encoder.transform(audit.Dataset.from_dataframe(new, target="y", classes=("0", "1"))).numpy()
    assert x[0, 1:3].sum() == 0 and x[1, 1:3].sum() == 1


def test_split_is_stratified_seeded_and_disjoint():
    data = audit.Dataset.from_arrays(np.arange(100)[:, None].astype(float), np.repeat([0, 1], 50))
    parts = data.split([0.7, 0.15, 0.15], seed=4)
    assert [len(p) for p in parts] == [70, 16, 14] or sum(len(p) for p in parts) == 100
    rows = [set(p.inputs["x0"]) for p in parts]
    assert not (rows[0] & rows[1]) and not (rows[0] & rows[2]) and not (rows[1] & rows[2])
    assert all(abs(p.labels.mean() - 0.5) < 0.1 for p in parts)
    assert [p.sha256 for p in parts] == [p.sha256 for p in data.split([0.7, 0.15, 0.15], seed=4)]


def test_hash_changes_with_content():
    a = audit.Dataset.from_dataframe(frame(), target="y")
    changed = frame()
    changed.loc[0, "x"] += 1e-9
    assert a.sha256 == audit.Dataset.from_dataframe(frame(), target="y").sha256
    assert a.sha256 != audit.Dataset.from_dataframe(changed, target="y").sha256


def test_from_arrays_images_and_text():
    images = audit.Dataset.from_arrays(np.zeros((4, 8, 8)), [0, 1, 0, 1])
    assert images.modality == "image" and images.inputs.shape == (4, 1, 8, 8)
    texts = audit.Dataset.from_arrays(["good film", "bad plot"], ["pos", "neg"])
    assert texts.modality == "text" and texts.classes == ("neg", "pos")


def test_csv_and_parquet_read_the_same(tmp_path):
    df = frame(30)
    df.to_csv(tmp_path / "d.csv", index=False)
    df.to_parquet(tmp_path / "d.parquet", index=False)
    from_csv = read_data(tmp_path / "d.csv", target="y", sensitive=["sex"])
    from_parquet = read_data(tmp_path / "d.parquet", target="y", sensitive=["sex"])
    assert from_csv.sha256 == from_parquet.sha256


def test_text_from_csv(tmp_path):
    pd.DataFrame({"review": ["a fine film", "a dull plot", "fine"], "label": ["pos", "neg", "pos"]}).to_csv(
        tmp_path / "t.csv", index=False)
    data = read_data(tmp_path / "t.csv", target="label", text_column="review")
    assert data.modality == "text" and data.texts[0] == "a fine film"


def test_tokenizer_vocabulary_and_padding():
    data = audit.Dataset.from_arrays(["Good good film!", "bad film", "odd words once"], [1, 0, 1])
    tok = Tokenizer.fit(data, min_count=2, max_length=5)
    assert tok.vocab[:2] == ("<pad>", "<unk>") and set(tok.vocab[2:]) == {"good", "film"}
    ids = tok.encode(["good film !", "unknown"]).numpy()
    assert ids.shape == (2, 5)
    assert ids[0, :3].tolist() == [tok.vocab.index("good"), tok.vocab.index("film"), Tokenizer.UNK]
    assert ids[1].tolist() == [Tokenizer.UNK, 0, 0, 0, 0]


@pytest.mark.parametrize("build, message", [
    (lambda: audit.Dataset.from_dataframe(frame().assign(y=1), target="y"), "single class"),
    (lambda: audit.Dataset.from_dataframe(frame().assign(x=np.nan), target="y"),
     r"column 'x' has 10 missing value\(s\) \(rows 0, 1, 2, 3, 4, \.\.\.\); fill them"),
    (lambda: audit.Dataset.from_dataframe(frame().iloc[:0], target="y"), "no rows"),
    (lambda: audit.Dataset.from_arrays(np.zeros((3, 2, 2, 2, 2)), [0, 1, 0]), "shape"),
    (lambda: audit.Dataset.from_arrays(np.full((2, 4, 4), np.nan), [0, 1]), "NaN"),
    (lambda: audit.Dataset.from_arrays(np.zeros((3, 2)), [0, 1]), "3 rows but y has 2"),
])
def test_bad_data_is_named(build, message):
    with pytest.raises(audit.AuditInputError, match=message):
        build()
