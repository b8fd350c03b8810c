"""A Hugging Face model card of one audit: `model-index` results in the front matter, the evidence in the text.

The front matter is YAML written as one JSON value per key (JSON is YAML's flow style), with every character
YAML's reader refuses or reads as a line break escaped: a name from data stays one quoted string and can add
no key. The text is Markdown with every name from data inert (`markdown_inert`).
"""

from __future__ import annotations

import json
import math
import re
from typing import TYPE_CHECKING

from audit.core.analyzer import ANALYZERS
from audit.policy.gates import find_metric_spec
from audit.report.ci import SEVERITY_MARK, STATUS_MARK
from audit.report.escape import markdown_inert as _md
from audit.report.html import format_number, section_title

if TYPE_CHECKING:
    from audit.executor.runner import AuditRun

NOT_STATED = "not stated"
# Hugging Face's task names for the pipeline a classifier of each modality serves.
TASKS = {"tabular": "tabular-classification", "image": "image-classification", "text": "text-classification"}
# Characters PyYAML's reader refuses (C1 controls, surrogates, noncharacters) or reads as line breaks.
_YAML_UNSAFE = re.compile("[\x7f-\x9f\u2028\u2029\ud800-\udfff\ufeff\ufffe\uffff]")


def render_model_card(run: AuditRun, *, intended_use: str | None = None, out_of_scope: str | None = None) -> str:
    """The card of `run`: every gateable metric with a finite value in `model-index` (its interval in the
    text: the format has no field for one), and sections for the model and data, intended and out-of-scope use,
    evaluation, each concern the analyzers declare (`Analyzer.concern`), limitations (the findings) and how to
    reproduce it. The use sections show `intended_use` and `out_of_scope` when given, else what the model's spec
    stated (`run.model`), else "not stated"."""
    lines = ["---", *_front_matter(run), "---", "", f"# Audit of {_md(_model_name(run))}", "",
             f"**{_md(run.verdict.summary)}**", "",
             "Written by `audit report --model-card`: evidence for a review, measured on the data named below.", ""]
    lines += _model_and_data(run)
    lines += ["## Intended use", "", _md(intended_use or run.model.get("intended_use") or NOT_STATED), "",
              "## Out-of-scope use", "", _md(out_of_scope or run.model.get("out_of_scope") or NOT_STATED), ""]
    lines += _evaluation(run)
    for title in dict.fromkeys(cls.concern for cls in ANALYZERS.classes() if cls.concern != "Evaluation"):
        lines += _section(run, title)
    lines += _limitations(run) + _reproduce(run)
    return "\n".join(lines)


def card_metrics(run: AuditRun) -> dict[str, float]:
    """The metrics the card's `model-index` holds: the run's gateable ones whose value is a finite number."""
    return {name: float(value) for name, value in run.metrics.items()
            if find_metric_spec(name) is not None and value is not None and math.isfinite(value)}


def _front_matter(run: AuditRun) -> list[str]:
    data = run.data
    task = {"type": TASKS.get(run.model.get("modality"), "other"), "name": "classification"}
    dataset = {"type": str(data.get("name")), "name": str(data.get("name"))}
    if data.get("sha256"):
        dataset["revision"] = str(data["sha256"])
    metrics = [{"type": name, "name": name, "value": value} for name, value in card_metrics(run).items()]
    results = [{"task": task, "dataset": dataset, "metrics": metrics}] if metrics else []
    fields = {"library_name": "pytorch", "tags": ["audit"],
              "model-index": [{"name": _model_name(run), "results": results}]}
    return [f"{key}: {_yaml(value)}" for key, value in fields.items()]


def _yaml(value) -> str:
    text = json.dumps(value, ensure_ascii=False, allow_nan=False)
    return _YAML_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def _model_name(run: AuditRun) -> str:
    return str(run.model.get("path") or run.model.get("architecture"))


def _model_and_data(run: AuditRun) -> list[str]:
    model, data = run.model, run.data
    rows = [("model file", model.get("path") or "in memory"), ("model SHA-256", model.get("sha256") or "n/a"),
            ("architecture", model.get("architecture")), ("modality", model.get("modality")),
            ("classes", ", ".join(map(str, model.get("classes", [])))),
            ("data", data.get("name")), ("data SHA-256", data.get("sha256") or "n/a"),
            ("rows", f"{data.get('rows', 0):,}"), ("target", data.get("target") or "n/a"),
            ("sensitive columns", ", ".join(map(str, data.get("sensitive", []))) or "none")]
    return ["## Model and data", "", "| | |", "|---|---|",
            *(f"| {label} | {_md(value, code=True)} |" for label, value in rows), ""]


def _evaluation(run: AuditRun) -> list[str]:
    lines = ["## Evaluation", "", f"Policy: {_md(run.provenance.get('policy', NOT_STATED))}.", ""]
    if run.verdict.gates:
        lines += ["| gate | value | result |", "|---|---:|---|"]
        lines += [f"| {_md(g.gate.describe(), code=True)} | {format_number(g.value)} | "
                  f"{STATUS_MARK[g.status]}: {_md(g.message)} |" for g in run.verdict.gates]
        lines.append("")
    errored = [r for r in run.results if r.status != "ok"]
    lines += [f"- analyzer {_md(r.analyzer, code=True)} {r.status}: {_md(r.error or r.details.get('reason', ''))}"
              for r in errored] + ([""] if errored else [])
    return lines + _metrics(run, [r for r in run.results if _concern(r) == "Evaluation"])


def _section(run: AuditRun, title: str) -> list[str]:
    results = [r for r in run.results if _concern(r) == title]
    body = _metrics(run, results) if results else ["Not run in this audit.", ""]
    return [f"## {title}", "", *body]


def _concern(result) -> str:
    """The card section of a result: what its analyzer declares (`Analyzer.concern`)."""
    return ANALYZERS.get(result.analyzer).concern if result.analyzer in ANALYZERS else "Evaluation"


def _metrics(run: AuditRun, results) -> list[str]:
    """The metrics of `results` with their intervals (95% unless the analyzer's options say otherwise)."""
    intervals = run.intervals
    rows = [(r, name, value) for r in results for name, value in r.metrics.items()]
    if not rows:
        return []
    lines = ["| analyzer | metric | value | interval |", "|---|---|---:|---:|"]
    for result, name, value in rows:
        interval = intervals.get(name)
        shown = f"{format_number(interval[0])} – {format_number(interval[1])}" if interval else ""
        lines.append(f"| {_md(section_title(result))} | {_md(name, code=True)} | {format_number(value)} | {shown} |")
    undefined = [name for _, name, value in rows if value is None or not math.isfinite(value)]
    if undefined:
        lines += ["", "Not a finite number on this data, so not in `model-index`: "
                  + ", ".join(_md(name, code=True) for name in undefined) + "."]
    return lines + [""]


def _limitations(run: AuditRun) -> list[str]:
    findings = run.verdict.findings
    if not findings:
        return ["## Limitations", "", "No findings.", ""]
    return ["## Limitations", "", *(f"- {SEVERITY_MARK[f.severity]} {_md(f.sentence)}" for f in findings), ""]


def _reproduce(run: AuditRun) -> list[str]:
    provenance = run.provenance
    versions = ", ".join(f"{name} {version}" for name, version in provenance.get("versions", {}).items())
    return ["## How to reproduce", "", _md(provenance.get("command", NOT_STATED)), "",
            f"Seed {run.seed}; Python {_md(provenance.get('python', NOT_STATED))}; {_md(versions or NOT_STATED)}; "
            f"device {_md(provenance.get('device', NOT_STATED))}; started {_md(provenance.get('started', ''))}.", ""]
