"""Slice findings, read from the typed summary: each slice shown, or what the search rules out."""

from __future__ import annotations

from collections.abc import Mapping

from audit.analyzers.slices.summary import Slice, SliceSummary
from audit.core.result import Finding

MAX_FINDINGS = 3
SELECTION = "selection rate"
CONDITIONAL = ("false positive rate", "false negative rate")


def _severity(found: Slice, limit: float) -> str:
    """An error rate or calibration gap: high when the whole interval of the gap lies beyond `limit`, medium when
    the estimate does, low otherwise. A false positive or false negative rate: at most medium, since a slice whose
    base rate differs from the rest's has different ones even under a calibrated model (Kleinberg et al. 2016;
    Chouldechova 2017). A selection rate: low, a difference the labels may carry."""
    if found.metric == SELECTION:
        return "low"
    nearest = min(abs(found.lower), abs(found.upper))
    severity = "high" if nearest > limit else "medium" if abs(found.gap) > limit else "low"
    return "medium" if severity == "high" and found.metric in CONDITIONAL else severity


def slice_findings(summary: SliceSummary, thresholds: Mapping[str, float]) -> list[Finding]:
    limit = thresholds["slice_gap_max"]
    searched = (f"{summary.slices_tested:,} slices of at least {summary.min_rows} rows tested, "
                f"false discovery rate {summary.alpha:.0%}")
    findings = [Finding(
        severity=_severity(found, limit),
        sentence=f"{found.sentence} ({searched}).",
        metrics=("slices.worst_gap",) if k == 0 else ("slices.slices_found",),
        why="A slice nobody named can hold the failures that matter in production; its interval is adjusted for "
            "the whole search, so it is not one of the gaps a search of this size finds by chance.",
        next="Read the slices table; check the slice's rows and labels, and add it to the sensitive columns or "
             "the evaluation data if it names people or sites.")
        for k, found in enumerate(summary.found[:MAX_FINDINGS])]
    if not summary.tests:
        findings.append(Finding(
            severity="info",
            sentence=f"No slice could be tested: none of the columns {', '.join(summary.columns) or '(none)'} has a "
                     f"value held by at least {summary.min_rows} of the {summary.rows:,} rows and missing from as "
                     "many.",
            metrics=("slices.slices_tested",),
            why="A search that tests nothing rules nothing out.",
            next="Audit more rows, or set slices.min_rows lower (the intervals widen with it)."))
    elif not summary.found and summary.detectable_gap is not None:
        findings.append(Finding(
            severity="info",
            sentence=f"No slice differs from the rest: no gap larger than {summary.detectable_gap:.0%} in any slice "
                     f"of at least {summary.min_rows} rows of the columns {', '.join(summary.columns)} "
                     f"({summary.slices_tested:,} slices, {summary.tests:,} tests, 80% power).",
            metrics=("slices.detectable_gap",),
            why="A search that finds nothing says how large a gap it could have seen.",
            next="Smaller gaps need more rows; set slices.min_rows lower only with more data."))
    return findings
