"""audit compare names the baseline and the candidate on every progress line and in every output, and tells a gate
the candidate fails as the baseline did apart from one it newly fails (a regression)."""

from __future__ import annotations

import dataclasses
import io
import json
import re


import audit
import audit.analyzers  # noqa: F401 - the metric registry the policy checks names against
from audit._util import progress
from audit.cli.outputs import finish
from audit.core.result import Result
from audit.executor import compare as compare_module
from audit.executor.compare import Comparison, Failures
from audit.executor.runner import AuditRun
from audit.policy.gates import Policy
from audit.report.ci import render_compare_markdown

POLICY = Policy.from_dict({"gates": {"performance.accuracy": {"min": 0.9, "max_decrease": 0.02},
                                     "performance.macro_f1": {"min": 0.8}}})


def make_run(accuracy: float, macro_f1: float, path: str) -> AuditRun:
    results = (Result(analyzer="performance",
                      metrics={"performance.accuracy": accuracy, "performance.macro_f1": macro_f1}),)
    run = AuditRun(model={"path": path, "architecture": "mlp", "modality": "tabular", "sha256": "0", "classes": []},
                   data={"name": "d", "rows": 10, "sha256": "0", "sensitive": []}, results=results,
                   verdict=audit.Verdict("ungated"))
    return dataclasses.replace(run, verdict=POLICY.evaluate(run))


def comparison(base: AuditRun, cand: AuditRun) -> Comparison:
    verdict = POLICY.evaluate(cand, baseline=base)
    return Comparison(base, dataclasses.replace(cand, verdict=verdict), verdict)


def metrics(gates) -> list[str]:
    return [g.gate.metric for g in gates]


def test_a_gate_both_fail_is_told_apart_from_a_new_failure():
    # accuracy fails its min in both (and the candidate is no worse); macro F1 passed in the baseline
    cmp = comparison(make_run(0.85, 0.85, "old.pt"), make_run(0.85, 0.70, "new.pt"))
    assert metrics(cmp.failures.as_baseline) == ["performance.accuracy"]
    assert metrics(cmp.failures.new) == ["performance.macro_f1"]
    assert cmp.failures.summary == "1 gate newly fails (a regression); 1 gate fails as the baseline did"


def test_a_gate_both_fail_is_a_regression_when_the_candidate_breaks_its_change_bound():
    cmp = comparison(make_run(0.85, 0.85, "old.pt"), make_run(0.80, 0.85, "new.pt"))
    assert metrics(cmp.failures.new) == ["performance.accuracy"] and cmp.failures.as_baseline == ()


def test_nothing_failing_says_nothing():
    cmp = comparison(make_run(0.95, 0.9, "old.pt"), make_run(0.95, 0.9, "new.pt"))
    assert cmp.failures == Failures() and cmp.failures.summary == ""
    assert "fails" not in render_compare_markdown(cmp).lower()


def test_markdown_html_and_json_label_baseline_and_candidate_and_split_the_failures():
    cmp = comparison(make_run(0.85, 0.85, "old.pt"), make_run(0.85, 0.70, "new.pt"))
    md = re.sub(r"\\(.)", r"\1", render_compare_markdown(cmp))  # as it reads, Markdown escapes undone
    assert md.startswith("## Audit compare: baseline old.pt → candidate new.pt")
    new, inherited = md.index("**Newly fails (a regression)**"), md.index("**Fails as the baseline did**")
    assert md.index("performance.macro_f1 >= 0.8", new) < inherited < md.index("performance.accuracy >= 0.9",
                                                                             inherited)
    html = cmp.render_html()
    assert "<title>Audit comparison: baseline old.pt vs candidate new.pt</title>" in html
    assert '<th scope="col">candidate</th><th scope="col">baseline</th>' in html
    section = html[html.index('id="failures"'):html.index('id="provenance"')]
    assert section.index("Newly fails (a regression)") < section.index("macro_f1") < \
        section.index("Fails as the baseline did") < section.index("performance.accuracy")
    doc = json.loads(cmp.to_json())
    assert [g["metric"] for g in doc["failures"]["new"]] == ["performance.macro_f1"]
    assert [g["metric"] for g in doc["failures"]["as_baseline"]] == ["performance.accuracy"]


def test_the_command_prints_the_split(capsys, tmp_path):
    cmp = comparison(make_run(0.85, 0.85, "old.pt"), make_run(0.85, 0.70, "new.pt"))
    assert finish(cmp.candidate, tmp_path / "r.html", failures=cmp.failures, label="candidate") == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[1] == "  1 gate newly fails (a regression); 1 gate fails as the baseline did"
    assert lines[2].startswith("  newly fails (fail): performance.macro_f1 >= 0.8")
    assert lines[3].startswith("  fails as the baseline did (fail): performance.accuracy >= 0.9")


def test_every_progress_line_of_compare_names_the_run(monkeypatch):
    runs = iter([make_run(0.95, 0.9, "old.pt"), make_run(0.95, 0.9, "new.pt")])

    def fake_run(model, data, analyzers, **kwargs):  # the progress an audit prints, and its run
        for _ in progress.steps(["performance", "fairness"], desc="audit", name=str):
            pass
        for _ in progress.rows([[1, 2]], desc="predict", total=2):
            pass
        return next(runs)

    stderr = io.StringIO()
    monkeypatch.setattr("sys.stderr", stderr)  # not a terminal: one line per step
    monkeypatch.setattr(compare_module, "run", fake_run)
    model = type("M", (), {"modality": "tabular"})()
    compare_module.compare(model, model, None, policy=POLICY)
    lines = stderr.getvalue().splitlines()
    assert [line.split(" ", 2)[:2] for line in lines] == [["baseline", "audit"]] * 2 + [["baseline", "predict:"]] + \
        [["candidate", "audit"]] * 2 + [["candidate", "predict:"]]
    for _ in progress.steps(["x"], desc="audit", name=str):  # outside compare: unlabelled
        pass
    assert stderr.getvalue().splitlines()[-1].startswith("audit 1/1: x")
