"""An evidence map for a reviewer: each item of `evidence_items` marked covered (with the metrics, their
intervals and the report section), partly covered or not covered, and why, decided from the run's results."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING

from audit.report.escape import markdown_inert as _md
from audit.policy.evidence_items import ITEMS, Item
from audit.report.html import format_number, section_title

if TYPE_CHECKING:
    from audit.executor.runner import AuditRun

NOTICE = ("Evidence for a review, not a conformity assessment: it maps what this audit measured to the items a "
          "reviewer asks about. Whether a system meets the EU AI Act or follows the NIST AI RMF is for the provider "
          "and the reviewer to decide.")
COVERED, PARTLY, NOT_COVERED = "covered", "partly covered", "not covered"
MARK = {COVERED: "✅ covered", PARTLY: "🟡 partly covered", NOT_COVERED: "⬜ not covered"}


@dataclass(frozen=True)
class Cited:
    metric: str
    value: float | None
    interval: tuple[float, float] | None
    section: str


@dataclass(frozen=True)
class Entry:
    item: Item
    status: str
    cited: tuple[Cited, ...]
    reason: str

    def to_dict(self) -> dict:
        return {"framework": self.item.framework, "ref": self.item.ref, "text": self.item.text,
                "citation": self.item.citation, "status": self.status, "reason": self.reason,
                "metrics": [{"metric": c.metric, "value": c.value,
                             "interval": list(c.interval) if c.interval else None, "section": c.section}
                            for c in self.cited]}


@dataclass(frozen=True)
class Evidence:
    model: dict
    data: dict
    verdict: str
    entries: tuple[Entry, ...]

    def to_dict(self) -> dict:
        return {"notice": NOTICE, "model": self.model, "data": self.data, "verdict": self.verdict,
                "items": [e.to_dict() for e in self.entries]}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, allow_nan=False)

    def to_markdown(self) -> str:
        model = self.model.get("path") or self.model.get("architecture")
        lines = ["# Evidence map", "", f"> {NOTICE}", "",
                 f"Model {_md(model)} (SHA-256 {_md(self.model.get('sha256') or 'not recorded')}) on data "
                 f"{_md(self.data.get('name'))} (SHA-256 {_md(self.data.get('sha256') or 'not recorded')}, "
                 f"{format_number(self.data.get('rows'))} rows). Verdict: {_md(self.verdict)}.", ""]
        for framework in dict.fromkeys(e.item.framework for e in self.entries):
            lines += [f"## {framework}", "", "| Item | Status | Evidence |", "| --- | --- | --- |"]
            for e in (e for e in self.entries if e.item.framework == framework):
                evidence = "<br>".join([_cited(c) for c in e.cited] + ([_md(e.reason)] if e.reason else []))
                lines.append(f"| **{e.item.ref}**: {e.item.text} ({e.item.citation}) "  # our text, no data
                             f"| {MARK[e.status]} | {evidence or 'n/a'} |")
            lines.append("")
        return "\n".join(lines)


def evidence_of(run: AuditRun) -> Evidence:
    return Evidence(model=run.model, data=run.data, verdict=run.verdict.summary,
                    entries=tuple(_entry(item, run) for item in ITEMS))


def _entry(item: Item, run: AuditRun) -> Entry:
    found = {need: sorted(m for m in run.metrics if any(fnmatchcase(m, p) for p in need.split("|")))
             for need in item.metrics}
    missing = [need.replace("|", " or ") for need, names in found.items() if not names]
    cited = tuple(_cite(name, run) for names in found.values() for name in names)
    if not cited and not item.recorded:
        return Entry(item, NOT_COVERED, (), _why_absent(item, run) if item.metrics else item.untested)
    reasons = ([f"recorded: {item.recorded}"] if item.recorded else []) + (
        [f"missing {', '.join(missing)} ({_why_absent(item, run)})"] if missing else []) + (
        [f"not tested: {item.untested}"] if item.untested else [])
    partly = bool(missing or item.untested)
    return Entry(item, PARTLY if partly else COVERED, cited, "; ".join(reasons))


def _cite(metric: str, run: AuditRun) -> Cited:
    value = run.metrics[metric]
    interval = run.intervals.get(metric)
    section = next(section_title(r) for r in run.results if metric in r.metrics)
    return Cited(metric, float(value) if math.isfinite(value) else None,
                 tuple(map(float, interval)) if interval else None, section)


def _why_absent(item: Item, run: AuditRun) -> str:
    """Which of the item's analyzers did not run, were skipped (and why) or errored; else that they ran without
    the metric (a modality without it)."""
    results = {r.analyzer: r for r in run.results}
    why = []
    for name in item.analyzers:
        result = results.get(name)
        if result is None:
            why.append(f"{name} not run")
        elif result.status == "skipped":
            why.append(f"{name} skipped: {result.details.get('reason', 'no reason given')}")
        elif result.status == "error":
            why.append(f"{name} errored")
    return "; ".join(why) or f"{', '.join(item.analyzers)} ran without this metric"


def _cited(c: Cited) -> str:
    interval = f" [{format_number(c.interval[0])}, {format_number(c.interval[1])}]" if c.interval else ""
    return f"{_md(c.metric, code=True)} = {format_number(c.value)}{interval} ({_md(c.section)})"
