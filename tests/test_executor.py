"""The one executor: the same table audited in memory, streamed at two chunk sizes and from its predictions only
gives the same numbers, findings, errors and verdict; an errored analyzer makes the verdict INCOMPLETE."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

import audit
import hostile
from audit._util.errors import AuditInputError
from audit.analyzers.fairness.analyzer import Fairness
from audit.analyzers.performance.analyzer import Performance, PerformanceTally
from audit.cli import main
from audit.io import checkpoint
from audit.io.sources import open_source
from audit.policy.gates import EXIT_ERROR

from test_streaming import CLASSES, adult_like, linear_model

SENSITIVE = ["sex", "race"]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """The table, and the model's predictions of it (its second class's score) with the labels and groups."""
    folder = tmp_path_factory.mktemp("executor")
    frame = adult_like(2000, seed=5)
    frame.to_parquet(folder / "t.parquet", row_group_size=300)
    model = linear_model()
    data = audit.Dataset.from_dataframe(frame, target="label", sensitive=SENSITIVE, classes=CLASSES)
    predictions = frame[["label", *SENSITIVE]].assign(score=model.predict_proba(data, cache=False)[:, 1])
    predictions.to_parquet(folder / "p.parquet", row_group_size=300)
    return folder, frame, predictions


def every_path(folder, frame, predictions, options=None) -> dict[str, audit.AuditRun]:
    """The audit of performance and fairness on each path of the executor."""
    model = linear_model()
    analyzers, options = ["performance", "fairness"], options or {}
    data = audit.Dataset.from_dataframe(frame, target="label", sensitive=SENSITIVE, classes=CLASSES)
    runs = {"memory": audit.run(model, data, analyzers, seed=3, options=options)}
    for rows in (97, 999):
        source = open_source(folder / "t.parquet", target="label", sensitive=SENSITIVE)
        runs[f"streamed {rows}"] = audit.run_stream(model, source, analyzers, seed=3, options=options,
                                                    chunk_rows=rows)
    columns = dict(target="label", scores=["score"], sensitive=SENSITIVE, classes=CLASSES, analyzers=analyzers,
                   seed=3, options=options)
    runs["predictions"] = audit.from_predictions(predictions, **columns)
    runs["predictions streamed"] = audit.from_predictions(folder / "p.parquet", stream=True, chunk_rows=97, **columns)
    return runs


def judgement(run: audit.AuditRun) -> dict:
    return {"statuses": [(r.analyzer, r.status, r.error) for r in run.results],
            "findings": [(f.severity, f.sentence) for r in run.results for f in r.findings],
            "verdict": (run.verdict.status, run.verdict.summary, run.verdict.exit_code)}


def assert_same(runs: dict[str, audit.AuditRun]) -> None:
    """Equal to 1e-9; the predictions' to 1e-6: the model's float32 probabilities, its first class's
    computed by the model and not as 1 - the second's, differ in the 8th digit."""
    memory = runs["memory"]
    for path, other in runs.items():
        tolerance = 1e-6 if path.startswith("predictions") else 1e-9
        assert set(other.metrics) == set(memory.metrics), path
        for name, value in memory.metrics.items():
            assert other.metrics[name] == pytest.approx(value, abs=tolerance, nan_ok=True), (path, name)
        assert set(other.intervals) == set(memory.intervals), path
        for name, bounds in memory.intervals.items():
            assert other.intervals[name] == pytest.approx(bounds, abs=tolerance, nan_ok=True), (path, name)
        for expected, got in zip(memory.results, other.results):
            assert set(got.tables) == set(expected.tables), path
            for key, table in expected.tables.items():
                pd.testing.assert_frame_equal(got.tables[key], table, check_exact=False, rtol=tolerance,
                                              atol=tolerance)
        assert judgement(other) == judgement(memory), path


def test_every_path_gives_the_same_numbers_findings_and_verdict(files):
    runs = every_path(*files)
    assert_same(runs)
    memory = runs["memory"]
    assert [r.status for r in memory.results] == ["ok", "ok"]
    # the planted advantage of men is found on every path
    assert memory.intervals["fairness.sex.demographic_parity_difference"][0] > 0.15
    assert any("sex" in f.sentence for f in memory.verdict.findings)
    assert memory.verdict.status == "ungated" and memory.verdict.exit_code == 0
    for path, run in runs.items():  # real seconds, also for the predictions read in chunks
        assert all(r.seconds > 0 for r in run.results), path


def test_a_setting_that_cannot_apply_stops_every_path_before_anything_runs(files, monkeypatch):
    """A positive class the model does not have is refused in one line on every path, before a prediction."""
    folder, frame, predictions = files
    monkeypatch.setattr(PerformanceTally, "add", lambda *a: pytest.fail("a chunk was counted"))
    refused = r"fairness: positive_class 'maybe' is not a class of the model \['<=50K', '>50K'\]"
    options = {"fairness": {"positive_class": "maybe"}}
    data = audit.Dataset.from_dataframe(frame, target="label", sensitive=SENSITIVE, classes=CLASSES)
    source = open_source(folder / "t.parquet", target="label", sensitive=SENSITIVE)
    columns = dict(target="label", scores=["score"], sensitive=SENSITIVE, classes=CLASSES, options=options)
    for run in (lambda: audit.run(linear_model(), data, options=options),
                lambda: audit.run_stream(linear_model(), source, options=options, chunk_rows=97),
                lambda: audit.from_predictions(predictions, **columns),
                lambda: audit.from_predictions(folder / "p.parquet", stream=True, chunk_rows=97, **columns)):
        with pytest.raises(AuditInputError, match=refused):
            run()


def test_a_positive_class_that_is_not_a_class_of_the_predictions_exits_2_in_one_line(files, tmp_path, capsys):
    folder, _, _ = files
    output = tmp_path / "r.html"
    code = main(["report", "--predictions", str(folder / "p.parquet"), "--target", "label", "--score-columns",
                 "score", "--sensitive", "sex", "--positive-class", "maybe", "-o", str(output), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "positive_class 'maybe' is not a class" in err, err
    assert not output.exists()


def test_an_input_error_raised_while_counting_a_chunk_is_the_same_error_result_on_every_path(files, monkeypatch):
    """Raised by the third chunk's rows when streamed, by the whole data in memory: one error result, the run
    goes on with fairness, and the verdict is INCOMPLETE, never NO CONCERNS."""
    original = PerformanceTally.add

    def add(self, chunk, proba, start):
        if start + len(chunk) > 200:
            raise AuditInputError("planted: a row past the 200th")
        original(self, chunk, proba, start)

    monkeypatch.setattr(PerformanceTally, "add", add)
    runs = every_path(*files)
    assert_same(runs)
    for path, run in runs.items():
        performance, fairness = run.results
        assert (performance.status, performance.error) == ("error", "AuditInputError: planted: a row past the 200th")
        assert fairness.status == "ok" and fairness.metrics, path
        assert run.verdict.summary.startswith("INCOMPLETE: analyzer(s) performance errored; ")
        assert "NO CONCERNS" not in run.verdict.summary


def test_a_label_the_model_does_not_know_stops_every_path_with_one_line(files, tmp_path):
    _, frame, predictions = files
    frame = frame.assign(label=np.where(np.arange(len(frame)) == 1500, "unknown", frame["label"]))
    frame.to_parquet(tmp_path / "t.parquet", row_group_size=300)
    source = open_source(tmp_path / "t.parquet", target="label", sensitive=SENSITIVE)
    with pytest.raises(AuditInputError, match="'unknown'"):
        audit.run_stream(linear_model(), source, ["performance"], chunk_rows=97)
    data = audit.Dataset.from_dataframe(frame, target="label", sensitive=SENSITIVE)
    with pytest.raises(AuditInputError, match="'unknown'"):
        audit.run(linear_model(), data, ["performance"])


def test_the_predictions_alone_skip_the_analyzers_that_need_the_model(files):
    _, _, predictions = files
    run = audit.from_predictions(predictions, target="label", scores=["score"], sensitive=SENSITIVE,
                                 classes=CLASSES, analyzers=["performance", "saliency"])
    assert [r.status for r in run.results] == ["ok", "skipped"]
    assert run.result("saliency").details["reason"] == "needs the model itself; only its predictions were given"
    assert Performance.needs_model is False and Fairness.needs_model is False
    assert audit.ANALYZERS.get("saliency").needs_model


@pytest.mark.parametrize("stream", [False, True])
def test_an_errored_analyzer_without_a_policy_exits_3_on_the_command_line(tmp_path, capsys, monkeypatch, stream):
    hostile.table(n=400).to_csv(tmp_path / "t.csv", index=False)
    checkpoint.save(hostile.tabular_model(), tmp_path / "t.pt")
    args = ["report", str(tmp_path / "t.pt"), "--data", str(tmp_path / "t.csv"), "--target", "approved",
            "--analyzers", "performance", "-o", str(tmp_path / "r.html"), "--quiet", *(["--stream"] if stream else [])]
    assert main(args) == 0
    assert capsys.readouterr().out.startswith("NO CONCERNS")

    def boom(self, chunk, proba, start):
        raise RuntimeError("kaboom")

    monkeypatch.setattr(PerformanceTally, "add", boom)
    assert main(args) == EXIT_ERROR
    out, err = capsys.readouterr()
    assert out.startswith("INCOMPLETE: analyzer(s) performance errored; ") and "NO CONCERNS" not in out
    assert "analyzer performance errored: RuntimeError: kaboom" in err


def test_compare_flags_the_metrics_of_a_result_with_a_caveat_and_calls_them_neither_better_nor_worse():
    from audit.core.result import Result
    from audit.executor.compare import Comparison
    from audit.policy.gates import Policy

    def made(gap: float, caveat: str = "") -> audit.AuditRun:
        results = (Result(analyzer="performance", metrics={"performance.accuracy": 1 - gap}),
                   Result(analyzer="fairness", metrics={"fairness.demographic_parity_difference": gap}, caveat=caveat))
        made = audit.AuditRun(model={}, data={}, results=results, verdict=audit.Verdict("ungated"))
        return dataclasses.replace(made, verdict=Policy().evaluate(made))

    honest = Comparison(made(0.2), made(0.1), audit.Verdict("ungated")).table().set_index("metric")
    assert honest["improved"].tolist() == [True, True] and honest["flag"].isna().all()
    collapsed = Comparison(made(0.2), made(0.01, caveat="predicts 'yes' for 99.0% of rows"),
                           audit.Verdict("ungated")).table().set_index("metric")
    assert collapsed.loc["fairness.demographic_parity_difference", "improved"] is None
    assert collapsed.loc["fairness.demographic_parity_difference", "flag"] == \
        "candidate: predicts 'yes' for 99.0% of rows"
    assert collapsed.loc["performance.accuracy", "improved"] is True and collapsed["flag"].isna().sum() == 1
