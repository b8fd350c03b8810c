"""Rows that copy other rows (the same inputs and label) are counted, whole and streamed, and named in a
finding from 5% of the rows; data without copies get none, and the metrics do not change."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

import audit
from audit.analyzers.performance import duplicates
from audit.analyzers.performance.analyzer import Performance
from audit.analyzers.performance.duplicates import DuplicateCount
from audit.io.sources import open_source, read_data

CLASSES = ("no", "yes")


def rows(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x0, x1 = rng.normal(size=n), rng.normal(size=n)
    return pd.DataFrame({"x0": x0, "x1": x1, "group": rng.choice(["a", "b"], n),
                         "label": np.where(x0 + rng.normal(size=n) > 0, "yes", "no")})


def model() -> audit.Model:
    layer = torch.nn.Linear(2, 2)
    with torch.no_grad():
        layer.weight[:] = torch.tensor([[-1.0, 0.0], [1.0, 0.0]])
        layer.bias[:] = 0.0
    return audit.wrap(layer, modality="tabular", classes=CLASSES, feature_names=["x0", "x1"], device="cpu")


def duplicate_findings(run) -> list[str]:
    (result,) = [r for r in run.results if r.analyzer == "performance"]
    return [f.sentence for f in result.findings if "exact copies" in f.sentence or "repeat other" in f.sentence]


@pytest.fixture(scope="module")
def copied(tmp_path_factory):
    """3,000 rows: 15 copies of each of 200 rows, shuffled, as Parquet in row groups of 250."""
    path = tmp_path_factory.mktemp("dup") / "copies.parquet"
    pd.concat([rows(200)] * 15).sample(frac=1, random_state=0).to_parquet(path, row_group_size=250)
    return path


def test_copies_are_named_whole_and_streamed_alike(copied):
    whole = audit.run(model(), read_data(copied, target="label", sensitive=["group"]), [Performance()])
    streamed = audit.run_stream(model(), open_source(copied, target="label", sensitive=["group"]), [Performance()],
                                chunk_rows=170)
    expected = ("2,800 of 3,000 rows are exact copies of other rows (93%): the intervals treat them as independent "
                "and are too narrow; deduplicate before auditing.")
    assert duplicate_findings(whole) == duplicate_findings(streamed) == [expected]
    assert [f.severity for f in whole.results[0].findings] == ["medium"]
    assert streamed.metrics == pytest.approx(whole.metrics, abs=1e-12)


def test_data_without_copies_get_no_finding_and_the_same_metrics(tmp_path):
    data = rows(3000, seed=1)
    data.to_parquet(tmp_path / "t.parquet")
    run = audit.run(model(), read_data(tmp_path / "t.parquet", target="label", sensitive=["group"]), [Performance()])
    assert duplicate_findings(run) == []
    (result,) = run.results
    assert result.details["duplicate_rows"] == 0


def test_a_tenth_of_repeats_is_a_question_not_a_verdict(tmp_path):
    """300 repeats in 3,300 rows (9%): a low finding that asks; 200 rows in 15 copies (93%): medium."""
    data = rows(3000, seed=4)
    pd.concat([data, data.iloc[:300]]).to_parquet(tmp_path / "t.parquet")
    run = audit.run(model(), read_data(tmp_path / "t.parquet", target="label"), [Performance()])
    (finding,) = [f for f in run.results[0].findings if "rows" in f.sentence]
    assert finding.severity == "low"
    assert finding.sentence.startswith("300 of 3,300 rows repeat other rows exactly (9%)")


def test_a_few_copies_are_counted_but_not_named(tmp_path):
    """100 copies in 3,100 rows (3%): below the 5% share."""
    data = rows(3000, seed=2)
    pd.concat([data, data.iloc[:100]]).to_parquet(tmp_path / "t.parquet")
    run = audit.run(model(), read_data(tmp_path / "t.parquet", target="label"), [Performance()])
    assert run.results[0].details["duplicate_rows"] == 100
    assert duplicate_findings(run) == []


def test_same_inputs_with_another_label_are_not_copies():
    data = rows(500, seed=3)
    flipped = data.assign(label=np.where(data["label"] == "yes", "no", "yes"))
    count = DuplicateCount()
    for frame in (data, flipped):
        count.add(frame[["x0", "x1", "group"]], (frame["label"] == "yes").to_numpy().astype(np.int64))
    assert count.duplicates == 0
    count.add(data[["x0", "x1", "group"]], (data["label"] == "yes").to_numpy().astype(np.int64))
    assert count.duplicates == 500


def test_a_column_read_as_integers_or_floats_counts_the_same():
    count = DuplicateCount()
    labels = np.zeros(3, dtype=np.int64)
    count.add(pd.DataFrame({"a": [1, 2, 3]}), labels)
    count.add(pd.DataFrame({"a": [1.0, 2.0, 3.0]}), labels)
    assert count.duplicates == 3


def test_past_the_exact_bound_the_count_is_estimated(monkeypatch):
    """With room for 512 distinct hashes, 20,000 rows of 4,000 distinct ones: the sampled count is near 16,000
    and the memory kept stays within the bound."""
    monkeypatch.setattr(duplicates, "EXACT_ROWS", 512)
    rng = np.random.default_rng(0)
    distinct = pd.DataFrame({"x": rng.normal(size=4000)})
    count = DuplicateCount()
    for i in range(0, 20_000, 1000):
        chunk = distinct.iloc[rng.integers(0, 4000, 1000)] if i else distinct.iloc[:1000]
        count.add(chunk.reset_index(drop=True), np.zeros(1000, dtype=np.int64))
    count.add(distinct.iloc[1000:].reset_index(drop=True), np.zeros(3000, dtype=np.int64))
    assert not count.exact and len(count.kept) <= 512
    assert count.duplicates == pytest.approx(23_000 - 4000, rel=0.1)


def test_images_and_texts_are_counted():
    images = np.random.default_rng(0).random((10, 1, 4, 4), dtype=np.float32)
    count = DuplicateCount()
    count.add(np.concatenate([images, images[:4]]), np.zeros(14, dtype=np.int64))
    assert count.duplicates == 4
    texts = DuplicateCount()
    texts.add(np.array(["a b", "a b", "c"], dtype=object), np.array([1, 1, 1]))
    assert texts.duplicates == 1
