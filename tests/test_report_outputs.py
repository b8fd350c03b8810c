"""What a reviewer reads first, in every output: findings and failing gates lead; run status is not a verdict."""

from __future__ import annotations

import dataclasses
import io

import pytest

import audit
import audit.analyzers  # noqa: F401 - the metric registry GATE is checked against, when this file runs alone
from audit._util import progress
from audit.core.result import Figure, Finding, Result
from audit.executor.compare import Comparison
from audit.policy.gates import Policy
from audit.report.ci import render_compare_markdown, render_markdown
from audit.executor.runner import AuditRun

HIGH = Finding("high", "True positive rate for <b>F</b> is 60 points below M's [58, 62] (equalized odds, sex).",
               ("fairness.sex.equalized_odds_difference",), "why", "next")
LOW = Finding("low", "The attribution methods disagree.", ("explanations.agreement",))


def make_run(accuracy: float, *findings: Finding, policy: Policy | None = None) -> AuditRun:
    results = (Result(analyzer="performance", metrics={"performance.accuracy": accuracy}, findings=findings,
                      figures=(Figure("Confusion matrix", "caption", b"\x89PNG" + b"0" * 600_000),)),)
    run = AuditRun(model={"path": "m.pt", "architecture": "mlp", "modality": "tabular", "sha256": "0", "classes": []},
                   data={"name": "d", "rows": 10, "sha256": "0", "sensitive": []}, results=results,
                   verdict=audit.Verdict("ungated"))
    return dataclasses.replace(run, verdict=(policy or Policy()).evaluate(run))


GATE = Policy.from_dict({"gates": {"performance.accuracy": {"min": 0.9, "max_decrease": 0.01}}})


def test_markdown_leads_with_failing_gates_then_findings_by_severity():
    text = render_markdown(make_run(0.8, LOW, HIGH, policy=GATE))
    order = [text.index(s) for s in ("**Failing gates**", "**Findings**", "🔴 **high**", "disagree", "<details>")]
    assert order == sorted(order)
    assert r"\<b\>F" in text and "<b>" not in text


def test_markdown_without_findings_says_so():
    assert "No findings." in render_markdown(make_run(0.95))


def test_compare_markdown_shows_baseline_candidate_and_change_per_gated_metric():
    base, cand = make_run(0.95), make_run(0.90)
    verdict = GATE.evaluate(cand, baseline=base)
    text = render_compare_markdown(Comparison(base, dataclasses.replace(cand, verdict=verdict), verdict))
    row = next(line for line in text.splitlines() if line.startswith("| `performance.accuracy"))
    assert "| 0.950 | 0.900 | -0.05 |" in row and "fail" in row


def test_verdict_without_gates_is_the_judgement_of_the_findings():
    assert make_run(0.9, LOW, HIGH).verdict.summary.startswith("CONCERNS: 1 high finding")
    assert make_run(0.9, LOW).verdict.summary.startswith("NO CONCERNS")
    assert make_run(0.9, HIGH).verdict.exit_code == 0


def test_reprs_are_short():
    run = make_run(0.9, HIGH)
    assert len(repr(run).splitlines()) <= 2 and len(repr(run)) < 300
    assert repr(run.results[0]) == "Result(performance ran, 1 metrics, findings: 1 high, 0.0 s)"


def test_html_leads_with_findings_and_shows_no_green_badge_beside_a_high_one():
    run = make_run(0.9, HIGH)
    html = run._repr_html_()
    assert html.index('id="verdict"') < html.index("True positive rate") < html.index("Key numbers")
    section = run.results[0]._repr_html_()
    assert 'class="sev sev-none"' not in section and "1 high" in section and "&lt;b&gt;F" in section
    assert 'class="badge ok"' not in section
    assert 'class="sev sev-none"' in make_run(0.9).results[0]._repr_html_()


@pytest.mark.parametrize("tty", [False, True])
def test_progress_names_each_analyzer(monkeypatch, tty):
    err = io.StringIO()
    err.isatty = lambda: tty
    monkeypatch.setattr("sys.stderr", err)
    assert list(progress.steps(["performance", "fairness"], desc="audit", name=str)) == ["performance", "fairness"]
    lines = err.getvalue()
    if tty:
        assert "fairness" in lines  # the bar names the running analyzer
    else:
        assert [line.split(" s")[0].rsplit(" ", 1)[0] for line in lines.splitlines()] == [
            "audit 1/2: performance", "audit 2/2: fairness"]
    err.truncate(0)
    with progress.quiet():
        list(progress.steps(["x"], desc="audit", name=str))
    assert err.getvalue().strip("\x00") == ""
