"""Policies: parsing errors, gate evaluation, fail-closed behaviour, CI outputs."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch
from junit_schema import valid_junit
from markdown_it import MarkdownIt

import audit
from audit.core.result import Result
from audit.analyzers.fairness.analyzer import Fairness
from audit.policy.gates import Policy
from audit.report.ci import render_junit, render_markdown
from audit.executor.runner import AuditRun


def fake_run(*results: Result) -> AuditRun:
    return AuditRun(model={"path": "m.pt", "architecture": "mlp", "modality": "tabular"},
                    data={"name": "d", "rows": 10}, results=results, verdict=audit.Verdict("ungated"))


def perf(accuracy: float, status: str = "ok") -> Result:
    metrics = {"performance.accuracy": accuracy} if status == "ok" else {}
    return Result(analyzer="performance", status=status, metrics=metrics,
                  intervals={"performance.accuracy": (accuracy - 0.05, accuracy + 0.05)} if status == "ok" else {},
                  error="RuntimeError: boom" if status == "error" else None)


def policy(**gate) -> Policy:
    return Policy.from_dict({"gates": {"performance.accuracy": gate}})


DPD = "fairness.demographic_parity_difference"


def fair(gap: float) -> Result:
    return Result(analyzer="fairness", metrics={DPD: gap}, intervals={DPD: (gap - 0.05, gap + 0.05)})


@pytest.mark.parametrize("gate, accuracy, status", [
    ({"min": 0.8}, 0.85, "pass"),
    ({"min": 0.8}, 0.75, "fail"),
    ({"max": 0.9}, 0.95, "fail"),
])
def test_gate_outcomes(gate, accuracy, status):
    verdict = policy(**gate).evaluate(fake_run(perf(accuracy)))
    assert verdict.status == status
    assert verdict.exit_code == {"pass": 0, "fail": 1}[status]


@pytest.mark.parametrize("gate, gap, status", [
    ({"max": 0.1, "use": "upper"}, 0.07, "fail"),  # interval 0.02-0.12: its upper bound is above 0.1
    ({"max": 0.1, "use": "lower"}, 0.13, "pass"),
    ({"max": 0.1}, 0.07, "pass"),
])
def test_interval_gates_read_the_bound(gate, gap, status):
    verdict = Policy.from_dict({"gates": {DPD: gate}}).evaluate(fake_run(fair(gap)))
    assert verdict.status == status


def test_failure_message_says_value_and_threshold():
    verdict = policy(min=0.8).evaluate(fake_run(perf(0.75)))
    assert verdict.gates[0].message == "performance.accuracy >= 0.8: value 0.75 below the minimum 0.8"


def test_gate_on_errored_analyzer_fails_closed_with_exit_3():
    verdict = policy(min=0.1).evaluate(fake_run(perf(0, status="error")))
    assert verdict.status == "error" and verdict.exit_code == 3
    assert "errored (RuntimeError: boom)" in verdict.gates[0].message


def test_an_errored_analyzer_without_gates_is_incomplete_never_no_concerns():
    fairness_error = Result(analyzer="fairness", status="error", error="AuditInputError: bad option")
    complete = Policy().evaluate(fake_run(perf(0.9)))
    assert (complete.status, complete.exit_code) == ("ungated", 0)
    assert complete.summary.startswith("NO CONCERNS: ")
    verdict = Policy().evaluate(fake_run(perf(0.9), fairness_error))
    assert (verdict.status, verdict.exit_code) == ("incomplete", 3)
    assert verdict.summary == "INCOMPLETE: analyzer(s) fairness errored; no high or medium findings (no gates were set)"
    assert verdict.to_dict()["status"] == "incomplete" and verdict.to_dict()["exit_code"] == 3


def test_passing_gates_with_another_analyzer_errored_are_incomplete():
    fairness_error = Result(analyzer="fairness", status="error", error="RuntimeError: boom")
    verdict = policy(min=0.8).evaluate(fake_run(perf(0.85), fairness_error))
    assert (verdict.status, verdict.exit_code) == ("incomplete", 3)
    assert verdict.summary.startswith("INCOMPLETE: analyzer(s) fairness errored; 1 of 1 gates passed")
    failing = policy(min=0.8).evaluate(fake_run(perf(0.75), fairness_error))
    assert failing.status == "fail" and failing.summary.endswith("; analyzer(s) fairness errored")
    assert policy(min=0.8).evaluate(fake_run(perf(0.85))).status == "pass"


def test_an_analyzer_errored_in_the_baseline_makes_a_comparison_incomplete():
    verdict = Policy().evaluate(fake_run(perf(0.9)), baseline=fake_run(perf(0, status="error")))
    assert verdict.status == "incomplete" and verdict.errored_analyzers == ("performance",)


def test_gate_on_analyzer_that_did_not_run_fails_closed():
    verdict = policy(min=0.1).evaluate(fake_run())
    assert verdict.exit_code == 3 and "did not run" in verdict.gates[0].message


def test_skipped_analyzer_fails_closed_unless_gate_is_if_applicable():
    skipped = Result(analyzer="performance", status="skipped")
    assert policy(min=0.1).evaluate(fake_run(skipped)).exit_code == 3
    verdict = policy(min=0.1, if_applicable=True).evaluate(fake_run(skipped))
    assert verdict.gates[0].status == "n/a" and verdict.exit_code == 0


def test_change_gates_apply_only_with_a_baseline():
    gate = policy(max_decrease=0.02)
    assert gate.evaluate(fake_run(perf(0.5))).gates[0].status == "n/a"
    assert gate.evaluate(fake_run(perf(0.79)), baseline=fake_run(perf(0.80))).status == "pass"
    verdict = gate.evaluate(fake_run(perf(0.70)), baseline=fake_run(perf(0.80)))
    assert verdict.status == "fail" and "fell by 0.1 from 0.8" in verdict.gates[0].message


@pytest.mark.parametrize("doc, message", [
    ({"gates": {"performance.acuracy": {"min": 1}}}, "unknown metric 'performance.acuracy'"),
    ({"gates": {"performance.accuracy": {"minimum": 1}}}, "unknown key"),
    ({"gates": {"performance.accuracy": {"use": "upper"}}}, "needs min, max"),
    ({"gates": {"performance.accuracy": {"min": "high"}}}, "min must be a finite number, found 'high'"),
    ({"gates": {"performance.accuracy": {"min": 1, "use": "median"}}}, "use = 'median'"),
    ({"rules": {}}, "unknown section"),
    ({"gates": 5}, r"gates must be tables, one per metric .* found 5"),
    ({"gates": [1, 2]}, "gates must be tables"),
    ({"gates": {"performance.accuracy": {"min": float("nan")}}}, "min must be a finite number, found nan"),
    ({"gates": {"performance.accuracy": {"max": float("nan")}}}, "max must be a finite number, found nan"),
    ({"gates": {"performance.accuracy": {"max": float("inf")}}}, "max must be a finite number, found inf"),
    ({"gates": {"performance.accuracy": {"max_decrease": -float("inf")}}}, "max_decrease must be a finite number"),
    ({"gates": {"performance.accuracy": {"min": 0.8, "use": "upper"}}},
     "gate 'performance.accuracy' has use = 'upper', but performance.accuracy has no interval"),
    ({"gates": {"robustness.group_gap": {"max": 0.1, "use": "lower"}}}, "robustness.group_gap has no interval"),
])
def test_bad_policies_are_named(doc, message):
    with pytest.raises(audit.AuditInputError, match=message):
        Policy.from_dict(doc, source="p.toml")


def test_nan_thresholds_in_a_toml_file_are_refused(tmp_path):
    path = tmp_path / "p.toml"
    for line in ("min = nan", "max = nan", "max = -inf"):
        path.write_text(f'[gates."performance.accuracy"]\n{line}\n')
        with pytest.raises(audit.AuditInputError, match=f"p.toml: gate 'performance.accuracy' {line.split()[0]} "
                                                        "must be a finite number"):
            Policy.from_toml(path)


def test_every_interval_metric_of_a_run_is_catalogued_with_interval():
    from audit.policy.gates import find_metric_spec, metric_catalog

    assert {name for name, spec in metric_catalog().items() if spec.interval} == {
        DPD.replace("demographic_parity_difference", m) for m in _disparities()} | {
        f"fairness.<feature>.{m}" for m in _disparities()} | {"slices.worst_gap"}
    assert find_metric_spec("fairness.sex.equalized_odds_difference").interval
    assert not find_metric_spec("performance.accuracy").interval


def _disparities():
    from audit.methods.fairness.metrics import DISPARITIES

    return DISPARITIES


def identity_data(n: int = 40) -> audit.Dataset:
    """A sensitive column `person` where every row is its own group, and a `site` with two large groups."""
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x0": rng.normal(size=n), "person": [f"p{i}" for i in range(n)],
                          "site": rng.choice(["north", "south"], n)})
    frame["label"] = np.where(frame["x0"] > 0, "yes", "no")
    return audit.Dataset.from_dataframe(frame, target="label", sensitive=["person", "site"], name="people")


def test_if_applicable_covers_a_metric_that_does_not_exist_not_one_the_data_left_undefined():
    data = identity_data()
    torch.manual_seed(0)
    model = audit.wrap(torch.nn.Linear(1, 2), modality="tabular", classes=data.classes, feature_names=["x0"])
    gates = {f"fairness.{feature}.demographic_parity_difference": {"max": 0.5, "if_applicable": True}
             for feature in ("person", "site", "sex")}
    fairness = Fairness(mitigation=False, intersections=1, min_group_size=8)
    run = audit.run(model, data, analyzers=[fairness], policy=Policy.from_dict({"gates": gates}))
    status = {g.gate.metric.split(".")[1]: g.status for g in run.verdict.gates}
    assert status == {"person": "fail", "site": "pass", "sex": "n/a"}  # sex: no such column here
    person = next(g for g in run.verdict.gates if ".person." in g.gate.metric)
    assert "not a finite number on this data" in person.message
    assert run.verdict.exit_code == 1

    only_people = dataclasses.replace(data, sensitive=data.sensitive[["person"]])
    worst = Policy.from_dict({"gates": {DPD: {"max": 0.5, "if_applicable": True}}})
    run = audit.run(model, only_people, analyzers=[fairness], policy=worst)
    assert run.verdict.gates[0].status == "fail" and run.verdict.exit_code == 1


def test_policy_file_errors(tmp_path):
    bad = tmp_path / "p.toml"
    bad.write_text("[gates\n")
    with pytest.raises(audit.AuditInputError, match="p.toml: not valid TOML"):
        Policy.from_toml(bad)
    with pytest.raises(audit.AuditInputError, match="no such policy file"):
        Policy.from_toml(tmp_path / "missing.toml")


def test_junit_has_one_testcase_per_gate_with_value_vs_threshold():
    doc = {"gates": {"performance.accuracy": {"min": 0.9}, "performance.ece": {"max": 0.5}}}
    run = fake_run(dataclasses.replace(perf(0.8), metrics={"performance.accuracy": 0.8, "performance.ece": 0.1}))
    verdict = Policy.from_dict(doc).evaluate(run)
    root = valid_junit(render_junit(verdict, run.results, name="m.pt"))
    gates = root.find("testsuite[@name='audit.gates']")
    cases = {c.get("name"): c for c in gates.findall("testcase")}
    assert set(cases) == {"performance.accuracy", "performance.ece"}
    failure = cases["performance.accuracy"].find("failure")
    assert failure is not None and "value 0.8 below the minimum 0.9" in failure.get("message")
    assert cases["performance.ece"].find("failure") is None
    assert gates.get("failures") == "1"


def test_markdown_summary_escapes_names():
    run = fake_run(perf(0.8))
    run = dataclasses.replace(run, model={**run.model, "path": "<img src=x onerror=alert(1)>|.pt"},
                              verdict=policy(min=0.9).evaluate(run))
    html = MarkdownIt("gfm-like").render(render_markdown(run))
    assert "<img" not in html and "&lt;img src=x onerror=alert(1)&gt;|.pt" in html
    assert "FAIL: 0 of 1 gates passed" in html
    assert "<code>performance.accuracy &gt;= 0.9</code>" in html  # a code span holds the raw >=
