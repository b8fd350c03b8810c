"""CI outputs: JUnit XML (one testcase per gate) and a Markdown summary for pull requests."""

from __future__ import annotations

from typing import TYPE_CHECKING
from xml.etree import ElementTree as ET

from audit.report.html import analyzer_title, format_number

if TYPE_CHECKING:
    from audit.policy import Verdict
    from audit.runner import AuditRun

STATUS_MARK = {"pass": "✅ pass", "fail": "❌ fail", "error": "⚠️ error", "n/a": "n/a"}


def render_junit(verdict: Verdict, results, *, name: str) -> str:
    """JUnit XML: a suite of gates (failure messages say value vs threshold) and one of analyzers."""
    root = ET.Element("testsuites", name=name)
    gates = ET.SubElement(root, "testsuite", name="audit.gates", tests=str(len(verdict.gates)),
                          failures=str(sum(g.status == "fail" for g in verdict.gates)),
                          errors=str(sum(g.status == "error" for g in verdict.gates)),
                          skipped=str(sum(g.status == "n/a" for g in verdict.gates)))
    for gate in verdict.gates:
        case = ET.SubElement(gates, "testcase", classname="audit.gates", name=gate.gate.metric)
        if gate.status == "fail":
            ET.SubElement(case, "failure", message=gate.message, type="GateFailed").text = gate.message
        elif gate.status == "error":
            ET.SubElement(case, "error", message=gate.message, type="GateNotEvaluated").text = gate.message
        elif gate.status == "n/a":
            ET.SubElement(case, "skipped", message=gate.message)
    analyzers = ET.SubElement(root, "testsuite", name="audit.analyzers", tests=str(len(results)),
                              errors=str(sum(r.status == "error" for r in results)),
                              skipped=str(sum(r.status == "skipped" for r in results)))
    for result in results:
        case = ET.SubElement(analyzers, "testcase", classname="audit.analyzers", name=result.analyzer,
                             time=f"{result.seconds:.3f}")
        if result.status == "error":
            ET.SubElement(case, "error", message=result.error or "", type="AnalyzerError").text = result.error
        elif result.status == "skipped":
            ET.SubElement(case, "skipped", message=str(result.details.get("reason", "")))
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def render_markdown(run: AuditRun) -> str:
    """A short summary for a pull-request comment or a CI job summary."""
    verdict = run.verdict
    lines = [
        f"## Audit: `{_md(run.model.get('path') or run.model['architecture'])}`",
        "",
        f"**{_md(verdict.summary)}** — {run.model['architecture']} ({run.model['modality']}) on "
        f"`{_md(run.data['name'])}`, {run.data['rows']:,} rows, seed {run.seed}.",
        "",
    ]
    if verdict.gates:
        lines += ["| gate | value | result |", "|---|---:|---|"]
        lines += [f"| `{_md(g.gate.describe())}` | {format_number(g.value)} | {STATUS_MARK[g.status]}: "
                  f"{_md(g.message)} |" for g in verdict.gates]
        lines.append("")
    errored = [r for r in run.results if r.status == "error"]
    if errored:
        lines += [f"⚠️ analyzer `{r.analyzer}` errored: {_md(r.error or '')}" for r in errored] + [""]
    lines += ["<details><summary>Metrics</summary>", "", "| analyzer | metric | value | interval |",
              "|---|---|---:|---:|"]
    intervals = run.intervals
    for result in run.results:
        for metric, value in result.metrics.items():
            interval = intervals.get(metric)
            shown = f"{format_number(interval[0])} – {format_number(interval[1])}" if interval else ""
            lines.append(f"| {analyzer_title(result.analyzer)} | `{metric}` | {format_number(value)} | {shown} |")
    lines += ["", "</details>", ""]
    return "\n".join(lines)


def _md(text: str) -> str:
    """Text from data or a model, safe inside a Markdown table cell (no HTML, no pipes)."""
    return (str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("|", "\\|")
            .replace("\n", " "))
