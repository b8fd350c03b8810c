"""Findings: what a reviewer must know, derived from each analyzer's Result and the policy's thresholds.

One small function per analyzer (`@finds("<analyzer>")`) reads a Result's metrics,
intervals, tables and details and returns Findings. A finding is raised only where the
interval supports it. The runner attaches them to the Result (`with_findings`), after the
findings the analyzer raised itself; a derived finding resting on the same metrics as one
of those is dropped.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping

from audit.core.analyzer import SEVERITIES, Finding, Result

Finder = Callable[[Result, Mapping[str, float]], list[Finding]]
_FINDERS: dict[str, Finder] = {}


def finds(analyzer: str) -> Callable[[Finder], Finder]:
    def register(fn: Finder) -> Finder:
        if analyzer in _FINDERS:
            raise ValueError(f"findings for {analyzer!r} are registered twice")
        _FINDERS[analyzer] = fn
        return fn
    return register


def by_severity(findings: Iterable[Finding]) -> tuple[Finding, ...]:
    """High first; the order within a severity is kept."""
    return tuple(sorted(findings, key=lambda f: SEVERITIES.index(f.severity)))


def with_findings(result: Result, thresholds: Mapping[str, float]) -> Result:
    """`result` with the findings its analyzer's finder derives, merged after its own."""
    finder = _FINDERS.get(result.analyzer)
    if result.status != "ok" or finder is None:
        return result
    covered = {m for f in result.findings for m in f.metrics}
    try:
        derived = [f for f in finder(result, thresholds) if not covered & set(f.metrics)]
    except Exception as exc:  # noqa: BLE001 - the analyzer's numbers stand; the judgement says it is missing
        derived = [Finding("medium", f"The findings of this analyzer could not be derived ({type(exc).__name__}: "
                                     f"{exc}); its numbers are shown unjudged.",
                           why="A run without findings must not read as a run without problems.",
                           next="Read this section's metrics against the default policy by hand, and report "
                                "the error.")]
    return dataclasses.replace(result, findings=by_severity([*result.findings, *derived]))


def worst_severity(findings: Iterable[Finding]) -> str | None:
    ranks = [SEVERITIES.index(f.severity) for f in findings]
    return SEVERITIES[min(ranks)] if ranks else None


def points(value: float) -> str:
    """A share as percentage points, e.g. 0.183 -> "18"."""
    return f"{abs(value) * 100:.0f}"

