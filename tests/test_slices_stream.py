"""A streamed run finds the slices an in-memory run finds, whatever the chunk size: the codes are decided once
(sensitive columns from the census, the other columns from the first rows) and the counts add up."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from audit.analyzers.slices import tally as slices_tally
from audit.analyzers.slices.analyzer import Slices
from audit.core.groups import SensitiveValues
from audit.executor.loop import Feed, execute
from audit.executor.predictions import Predictions, from_predictions
from audit.policy.thresholds import DEFAULT_VALUES

from test_slices_planted import planted_table


def streamed(data, proba, rows: int):
    chunks = [(data.subset(np.arange(i, min(i + rows, len(data)))), proba[i:i + rows])
              for i in range(0, len(data), rows)]
    feed = Feed(first=chunks[0][0], chunks=chunks, values=SensitiveValues.of(data.sensitive), rows=len(data),
                model_given=False)
    (result,) = execute(Predictions(proba, data.classes), feed, [Slices()], seed=0, thresholds=DEFAULT_VALUES).results
    return result


@pytest.mark.parametrize("rows", [257, 1000, 6000])
def test_streamed_chunks_report_the_slices_of_the_run_in_memory(monkeypatch, rows):
    monkeypatch.setattr(slices_tally, "FIRST_ROWS", 1500)  # the first rows decide the bins: more than a chunk
    data, proba = planted_table(planted=True)
    whole = Slices().run(Predictions(proba, data.classes), data)
    result = streamed(data, proba, rows)
    assert result.status == "ok", result.error
    assert result.summary == whole.summary and result.summary.found
    assert result.metrics == whole.metrics and result.details == whole.details
    pd.testing.assert_frame_equal(result.tables["slices"], whole.tables["slices"])


def test_the_first_rows_decide_the_bins_of_inputs_and_the_census_those_of_sensitive_columns(monkeypatch):
    monkeypatch.setattr(slices_tally, "FIRST_ROWS", 100)
    data, proba = planted_table(planted=True)
    first = data.subset(np.arange(100))
    late = Slices().run(Predictions(proba, data.classes), data).details["columns"]
    assert late["color"] == sorted(set(first.inputs["color"]))
    weights = first.inputs["weight"].quantile([0.25, 0.5, 0.75]).to_numpy()
    assert late["weight"][0] == f"<{weights[0]:g}"
    assert late["region"] == ["north", "south"]


def test_a_streamed_predictions_file_reports_the_slices_of_the_file_read_whole(tmp_path):
    rng = np.random.default_rng(1)
    n = 4000
    frame = pd.DataFrame({"site": rng.choice(["a", "b", "c", "d"], n), "shift": rng.choice(["day", "night"], n),
                          "label": rng.integers(0, 2, n)})
    wrong = rng.random(n) > np.where((frame["site"] == "c") & (frame["shift"] == "night"), 0.5, 0.9)
    frame["predicted"] = np.where(wrong, 1 - frame["label"], frame["label"])
    path = tmp_path / "predictions.csv"
    frame.to_csv(path, index=False)
    options = dict(target="label", prediction="predicted", sensitive=["site", "shift"], analyzers=["slices"])
    whole = from_predictions(path, **options).result("slices")
    stream = from_predictions(path, **options, stream=True, chunk_rows=333).result("slices")
    assert stream.summary == whole.summary
    assert whole.summary.worst.words == "site = c and shift = night"
    assert [f.sentence for f in stream.findings] == [f.sentence for f in whole.findings]
