"""CI outputs: JUnit XML (one testcase per gate) and a Markdown summary for pull requests."""

from __future__ import annotations

from typing import TYPE_CHECKING
from xml.etree import ElementTree as ET

from audit.report.escape import markdown_inert as _md
from audit.report.escape import xml_text
from audit.report.html import format_number, section_title

if TYPE_CHECKING:
    from audit.executor.compare import Comparison
    from audit.policy.gates import Verdict
    from audit.executor.runner import AuditRun

STATUS_MARK = {"pass": "✅ pass", "fail": "❌ fail", "error": "⚠️ error", "n/a": "n/a"}
SEVERITY_MARK = {"high": "🔴 **high**", "medium": "🟠 **medium**", "low": "🔵 low", "info": "ℹ️ info"}


def render_junit(verdict: Verdict, results, *, name: str) -> str:
    """JUnit XML: a suite of gates (failure messages say value vs threshold) and one of analyzers."""
    root = _element(None, "testsuites", name=name)
    gates = _element(root, "testsuite", name="audit.gates", tests=len(verdict.gates),
                     failures=sum(g.status == "fail" for g in verdict.gates),
                     errors=sum(g.status == "error" for g in verdict.gates),
                     skipped=sum(g.status == "n/a" for g in verdict.gates))
    for gate in verdict.gates:
        case = _element(gates, "testcase", classname="audit.gates", name=gate.gate.metric)
        if gate.status == "fail":
            _element(case, "failure", gate.message, message=gate.message, type="GateFailed")
        elif gate.status == "error":
            _element(case, "error", gate.message, message=gate.message, type="GateNotEvaluated")
        elif gate.status == "n/a":
            _element(case, "skipped", message=gate.message)
    analyzers = _element(root, "testsuite", name="audit.analyzers", tests=len(results), failures=0,
                         errors=sum(r.status == "error" for r in results),
                         skipped=sum(r.status == "skipped" for r in results))
    for result in results:
        case = _element(analyzers, "testcase", classname="audit.analyzers", name=result.analyzer,
                        time=f"{result.seconds:.3f}")
        if result.status == "error":
            _element(case, "error", result.error or "", message=result.error or "", type="AnalyzerError")
        elif result.status == "skipped":
            _element(case, "skipped", message=result.details.get("reason", ""))
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def _element(parent: ET.Element | None, tag: str, text: str | None = None, **attributes) -> ET.Element:
    """An XML element whose text and attributes hold only characters XML allows."""
    attributes = {k: xml_text(v) for k, v in attributes.items()}
    element = ET.Element(tag, attributes) if parent is None else ET.SubElement(parent, tag, attributes)
    if text is not None:
        element.text = xml_text(text)
    return element


def render_markdown(run: AuditRun) -> str:
    """A short summary for a pull-request comment or a CI job summary: failing gates and findings first;
    every name from data is inert."""
    verdict = run.verdict
    lines = [
        f"## Audit: {_md(run.model.get('path') or run.model['architecture'])}",
        "",
        f"**{_md(verdict.summary)}** — {_md(run.model['architecture'])} ({_md(run.model['modality'])}) on "
        f"{_md(run.data['name'])}, {run.data['rows']:,} rows, seed {run.seed}.",
        "",
    ]
    errored = [r for r in run.results if r.status == "error"]
    if errored:  # part of the verdict: what it could not judge
        lines += [f"⚠️ analyzer {_md(r.analyzer, code=True)} errored: {_md(r.error or '')}" for r in errored] + [""]
    lines += _failing_gates(verdict) + _findings(verdict.findings)
    if verdict.gates:
        lines += ["<details><summary>Every gate</summary>", "", "| gate | value | result |", "|---|---:|---|"]
        lines += [f"| {_md(g.gate.describe(), code=True)} | {format_number(g.value)} | "
                  f"{STATUS_MARK[g.status]}: {_md(g.message)} |" for g in verdict.gates]
        lines += ["", "</details>", ""]
    lines += ["<details><summary>Metrics</summary>", "", "| analyzer | metric | value | interval |",
              "|---|---|---:|---:|"]
    intervals = run.intervals
    for result in run.results:
        for metric, value in result.metrics.items():
            interval = intervals.get(metric)
            shown = f"{format_number(interval[0])} – {format_number(interval[1])}" if interval else ""
            lines.append(f"| {_md(section_title(result))} | {_md(metric, code=True)} | "
                         f"{format_number(value)} | {shown} |")
    lines += ["", "</details>", ""]
    return "\n".join(lines)


def render_compare_markdown(comparison: Comparison) -> str:
    """The candidate's summary, led by baseline, candidate and change for every gated metric; the failed gates
    split into those that newly fail and those that fail as the baseline did."""
    verdict = comparison.verdict
    changes = comparison.table().set_index("metric")
    lines = [
        f"## Audit compare: baseline {_md(comparison.baseline.model.get('path') or '(in memory)')} → "
        f"candidate {_md(comparison.candidate.model.get('path') or '(in memory)')}",
        "",
        f"**{_md(verdict.summary)}**",
        "",
    ]
    failures = comparison.failures
    if failures.summary:
        lines += [_md(failures.summary), ""]
        for kind, gates in (("Newly fails (a regression)", failures.new),
                            ("Fails as the baseline did", failures.as_baseline)):
            if gates:
                lines += [f"**{kind}**", ""] + [
                    f"- {STATUS_MARK[g.status]} {_md(g.gate.describe(), code=True)}: {_md(g.message)}"
                    for g in gates] + [""]
    rule = comparison.candidate.model.get("postprocessing")
    if rule:
        lines += [f"> The candidate needs the sensitive attribute {_md(rule['column'], code=True)} at prediction time "
                  "(group-specific thresholds).", ""]
    if verdict.gates:
        lines += ["| gate | baseline | candidate | change | result |", "|---|---:|---:|---:|---|"]
        for g in verdict.gates:
            row = changes.loc[g.gate.metric] if g.gate.metric in changes.index else None
            base = g.baseline if g.baseline is not None else (None if row is None else row["baseline"])
            cand = g.value if g.value is not None else (None if row is None else row["candidate"])
            change = cand - base if base is not None and cand is not None else None
            lines.append(f"| {_md(g.gate.describe(), code=True)} | {format_number(base)} | "
                         f"{format_number(cand)} | {_signed(change)} | {STATUS_MARK[g.status]}: {_md(g.message)} |")
        lines.append("")
    lines += _findings(verdict.findings, title="Findings on the candidate")
    return "\n".join(lines)


def _failing_gates(verdict: Verdict) -> list[str]:
    failed = verdict.failed
    if not failed:
        return []
    return ["**Failing gates**", ""] + [
        f"- {STATUS_MARK[g.status]} {_md(g.gate.describe(), code=True)}: {_md(g.message)}" for g in failed] + [""]


def _findings(findings, title: str = "Findings") -> list[str]:
    if not findings:
        return [f"No {title[0].lower()}{title[1:]}.", ""]
    return [f"**{title}**", ""] + [f"- {SEVERITY_MARK[f.severity]} {_md(f.sentence)}" for f in findings] + [""]


def _signed(value) -> str:
    return "n/a" if value is None or value != value else f"{value:+.4g}"

