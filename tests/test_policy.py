"""Policies: parsing errors, gate evaluation, fail-closed behaviour, CI outputs."""

from __future__ import annotations

import dataclasses
from xml.etree import ElementTree as ET

import pytest

import audit
from audit.analyzers.base import Result
from audit.policy import Policy
from audit.report.ci import render_junit, render_markdown
from audit.runner import AuditRun


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


@pytest.mark.parametrize("gate, accuracy, status", [
    ({"min": 0.8}, 0.85, "pass"),
    ({"min": 0.8}, 0.75, "fail"),
    ({"max": 0.9}, 0.95, "fail"),
    ({"min": 0.8, "use": "lower"}, 0.83, "fail"),  # interval 0.78-0.88: its lower bound is below 0.8
    ({"min": 0.8, "use": "upper"}, 0.77, "pass"),
])
def test_gate_outcomes(gate, accuracy, status):
    verdict = policy(**gate).evaluate(fake_run(perf(accuracy)))
    assert verdict.status == status
    assert verdict.exit_code == {"pass": 0, "fail": 1}[status]


def test_failure_message_says_value_and_threshold():
    verdict = policy(min=0.8).evaluate(fake_run(perf(0.75)))
    assert verdict.gates[0].message == "performance.accuracy >= 0.8: value 0.75 below the minimum 0.8"


def test_gate_on_errored_analyzer_fails_closed_with_exit_3():
    verdict = policy(min=0.1).evaluate(fake_run(perf(0, status="error")))
    assert verdict.status == "error" and verdict.exit_code == 3
    assert "errored (RuntimeError: boom)" in verdict.gates[0].message


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
    ({"gates": {"performance.accuracy": {"min": "high"}}}, "min must be a number"),
    ({"gates": {"performance.accuracy": {"min": 1, "use": "median"}}}, "use = 'median'"),
    ({"rules": {}}, "unknown section"),
])
def test_bad_policies_are_named(doc, message):
    with pytest.raises(audit.AuditInputError, match=message):
        Policy.from_dict(doc, source="p.toml")


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
    root = ET.fromstring(render_junit(verdict, run.results, name="m.pt"))
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
    text = render_markdown(run)
    assert "<img" not in text and "&lt;img" in text
    assert "FAIL: 0 of 1 gates passed" in text
