"""The columns a data file carries beside its inputs, label and sensitive columns (Dataset.attributes) are searched
for slices: an image folder's metadata columns, a text table's other columns, an NPZ's other arrays. They are not
sensitive: fairness never reads them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import audit
from audit.analyzers.slices import tally as slices_tally
from audit.analyzers.slices.analyzer import Slices
from audit.core.dataset import Dataset, concat
from audit.core.groups import SensitiveValues
from audit.executor.loop import Feed, execute
from audit.executor.predictions import Predictions
from audit.io.sources import open_source, read_data
from audit.policy.thresholds import DEFAULT_VALUES

from test_slices_planted import NearestBrightness, slices_of, write_sites


def folder_slices(root, **options):
    data = read_data(root)
    model = audit.wrap(NearestBrightness(), modality="image", classes=data.classes, device="cpu")
    return data, model, audit.run(model, data, ["slices"], seed=0, options={"slices": options}).result("slices")


def test_a_washed_out_site_is_found_without_naming_it_sensitive(tmp_path):
    write_sites(tmp_path, "east")
    data, _, result = folder_slices(tmp_path)
    assert data.sensitive_names == () and list(data.attributes.columns) == ["site"]
    worst = result.summary.worst
    assert worst.words == "site = east" and worst.metric == "error rate" and worst.rate > 0.5
    assert result.findings[0].severity == "high" and result.findings[0].sentence.startswith("site = east: error")


def test_a_control_folder_with_the_site_as_attribute_gets_no_slice(tmp_path):
    write_sites(tmp_path, None)
    _, _, result = folder_slices(tmp_path)
    assert result.details["columns"] == {"site": ["east", "north", "south"]}
    assert result.summary.found == () and [f.severity for f in result.findings] == ["info"]


def test_a_streamed_folder_reports_the_slices_of_the_folder_read_whole(tmp_path, monkeypatch):
    monkeypatch.setattr(slices_tally, "FIRST_ROWS", 100)  # the codes are decided in the middle of a chunk
    write_sites(tmp_path, "east")
    _, model, whole = folder_slices(tmp_path)
    stream = audit.run_stream(model, open_source(tmp_path), ["slices"], chunk_rows=70).result("slices")
    assert stream.summary == whole.summary and stream.summary.worst.words == "site = east"
    assert stream.details == whole.details
    pd.testing.assert_frame_equal(stream.tables["slices"], whole.tables["slices"])


def test_a_metadata_table_of_a_thousand_columns_is_searched_within_max_columns(tmp_path):
    write_sites(tmp_path, "east")
    table = pd.read_csv(tmp_path / "metadata.csv")
    rng = np.random.default_rng(0)
    wide = pd.concat([table.assign(id=[f"img{i:04d}" for i in range(len(table))]),
                      pd.DataFrame(rng.integers(0, 3, (len(table), 998)), columns=[f"c{i}" for i in range(998)])],
                     axis=1)
    wide.to_csv(tmp_path / "metadata.csv", index=False)
    _, _, result = folder_slices(tmp_path, max_columns=8)
    assert list(result.details["columns"]) == ["site", "id", *[f"c{i}" for i in range(6)]]
    assert len(result.details["columns"]["id"]) == 12  # an ID column: its first max_values values only
    assert result.warnings[0].startswith("992 column(s) not searched, beyond slices.max_columns = 8: c6, c7")
    assert result.summary.worst.words == "site = east"


def write_reviews(path, *, mislabelled: str | None, n: int = 3000, seed: int = 4) -> np.ndarray:
    """A text CSV (text, label, source, lang) and the predictions of a model right 90% of the time on the true
    labels; in the `mislabelled` source 40% of the labels written are flipped. Returns the probabilities."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 2, n)
    source = rng.choice(["shop", "forum", "blog", "news"], n)
    texts = [f"{'a fine' if t else 'a poor'} product{' really' * (i % 5)}" for i, t in enumerate(truth)]
    flipped = (source == mislabelled) & (rng.random(n) < 0.4)
    frame = pd.DataFrame({"text": texts, "label": np.where(flipped, 1 - truth, truth), "source": source,
                          "lang": rng.choice(["en", "de"], n)})
    frame.to_csv(path, index=False)
    predicted = np.where(rng.random(n) < 0.9, truth, 1 - truth)
    return np.column_stack([1 - predicted, predicted]).astype(float)


@pytest.mark.parametrize("mislabelled", ["forum", None])
def test_a_mislabelled_source_of_a_text_table_is_a_slice_naming_it(tmp_path, mislabelled):
    proba = write_reviews(tmp_path / "reviews.csv", mislabelled=mislabelled)
    data = read_data(tmp_path / "reviews.csv", target="label", text_column="text", classes=("0", "1"))
    assert list(data.attributes.columns) == ["source", "lang"] and data.sensitive_names == ()
    result = slices_of(data, proba)
    assert {"words", "source", "lang"} <= set(result.details["columns"])
    found = [s.words for s in result.summary.found if s.metric == "error rate"]
    assert found[:1] == (["source = forum"] if mislabelled else []), found


def test_a_streamed_text_table_reports_the_slices_of_the_table_read_whole(tmp_path, monkeypatch):
    monkeypatch.setattr(slices_tally, "FIRST_ROWS", 1000)
    path = tmp_path / "reviews.csv"
    proba = write_reviews(path, mislabelled="forum")
    source = open_source(path, target="label", text_column="text")
    data = source.read(("0", "1"))
    whole = Slices().run(Predictions(proba, data.classes), data)
    chunks = list(source.chunks(("0", "1"), 700))
    assert all(list(c.attributes.columns) == ["source", "lang"] for c in chunks)
    starts = np.cumsum([0, *map(len, chunks)])
    feed = Feed(first=chunks[0], chunks=[(c, proba[s:s + len(c)]) for c, s in zip(chunks, starts)],
                values=SensitiveValues(), rows=len(data), model_given=False)
    (stream,) = execute(Predictions(proba, data.classes), feed, [Slices()], seed=0,
                        thresholds=DEFAULT_VALUES).results
    assert stream.summary == whole.summary and whole.summary.worst.words == "source = forum"
    pd.testing.assert_frame_equal(stream.tables["slices"], whole.tables["slices"])


def test_fairness_is_unchanged_by_attributes(tmp_path):
    write_sites(tmp_path / "plain", "east")
    write_sites(tmp_path / "more", "east")
    table = pd.read_csv(tmp_path / "more" / "metadata.csv")
    table.assign(camera=np.arange(len(table)) % 3).to_csv(tmp_path / "more" / "metadata.csv", index=False)
    results = []
    for folder in ("plain", "more"):
        data = read_data(tmp_path / folder, sensitive=["site"])
        model = audit.wrap(NearestBrightness(), modality="image", classes=data.classes, device="cpu")
        results.append(audit.run(model, data, ["fairness"], seed=0).result("fairness"))
    assert list(read_data(tmp_path / "more", sensitive=["site"]).attributes.columns) == ["camera"]
    plain, more = results
    assert plain.status == more.status == "ok"
    assert plain.metrics == more.metrics and plain.intervals == more.intervals
    assert "camera" not in str(more.to_dict())


def test_attributes_follow_the_rows_through_subset_split_and_concat():
    frame = pd.DataFrame({"text": [f"text {i}" for i in range(40)], "label": ["a", "b"] * 20,
                          "group": ["x", "y", "z", "w"] * 10, "note": [None, *map(str, range(39))]})
    data = Dataset.from_dataframe(frame, target="label", sensitive=["group"], text_column="text")
    assert list(data.attributes.columns) == ["note"] and data.attributes["note"].isna().sum() == 1
    part = data.subset([3, 5, 7])
    assert part.attributes["note"].tolist() == ["2", "4", "6"]
    halves = data.split([0.5, 0.5], seed=0)
    whole = concat(halves)
    assert sorted(whole.attributes["note"].dropna()) == sorted(frame["note"].dropna())
    assert [len(h.attributes) for h in halves] == [20, 20]
    table = Dataset.from_dataframe(frame.drop(columns="text").fillna("0"), target="label")
    assert table.attributes.columns.empty  # a table's other columns are its inputs
    assert Dataset.from_dataframe(frame.drop(columns="note"), target="label", text_column="text",
                                  sensitive=["group"]).sha256 == data.sha256


def test_an_npz_array_beside_named_sensitive_ones_is_an_attribute(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "images.npz"
    np.savez(path, x=rng.random((20, 1, 4, 4)), y=np.arange(20) % 2, group=np.arange(20) % 2,
             site=np.repeat(["a", "b"], 10), extra=np.zeros((3, 3)))
    named = read_data(path, sensitive=["group"])
    assert named.sensitive_names == ("group",) and list(named.attributes.columns) == ["site"]
    assert [len(c.attributes) for c in open_source(path, sensitive=["group"]).chunks(named.classes, 8)] == [8, 8, 4]
