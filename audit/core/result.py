"""What an analyzer returns: a `Result` with flat metrics, intervals, tables, figures and findings.

A report, a notebook or a comparison reads these typed objects; none of them parses another
module's metric names or free-form `details`. A Result renders itself in a notebook through the
formatter that `audit.report` registers (`set_html_formatter`), so nothing here imports it.
"""

from __future__ import annotations

import base64
import dataclasses
import html
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

STATUSES = ("ok", "error", "skipped")
SEVERITIES = ("high", "medium", "low", "info")

_html_formatter: Callable[[Result], str] | None = None


def set_html_formatter(formatter: Callable[[Result], str]) -> None:
    """How a Result shows itself in a notebook (audit.report registers its renderer on import)."""
    global _html_formatter
    _html_formatter = formatter


def html_of(result: Result) -> str:
    if _html_formatter is None:
        return f"<pre>{html.escape(repr(result))}</pre>"
    return _html_formatter(result)


def by_severity(findings: Iterable[Finding]) -> tuple[Finding, ...]:
    """High first; the order within a severity is kept."""
    return tuple(sorted(findings, key=lambda f: SEVERITIES.index(f.severity)))


def worst_severity(findings: Iterable[Finding]) -> str | None:
    ranks = [SEVERITIES.index(f.severity) for f in findings]
    return SEVERITIES[min(ranks)] if ranks else None


def points(value: float) -> str:
    """A share as percentage points, e.g. 0.183 -> "18"."""
    return f"{abs(value) * 100:.0f}"


@dataclass(frozen=True)
class MetricSpec:
    """A gateable metric: what it means, which direction is better, and whether it comes with an interval.

    `interval` is true when the analyzer reports a confidence interval for the metric, so a gate
    may read its bounds (`use = "upper"` or `"lower"`).
    """

    description: str
    better: str  # "higher" or "lower"
    interval: bool = False


@dataclass(frozen=True)
class Figure:
    """A rendered plot with the caption that says what it shows and how to read it."""

    title: str
    caption: str
    png: bytes
    gallery: bool = False  # per-example panels: the report shows them folded, below the summary figures

    def data_uri(self) -> str:
        return "data:image/png;base64," + base64.b64encode(self.png).decode("ascii")


@dataclass(frozen=True)
class Finding:
    """What a reviewer must know: a judgement with its evidence.

    `sentence` is one plain-language sentence that carries the number and its interval;
    `metrics` are the metric names it rests on; `why` says why it matters and `next`
    what to look at next. A finding is never raised on a number whose interval does not
    support it."""

    severity: str
    sentence: str
    metrics: tuple[str, ...] = ()
    why: str = ""
    next: str = ""

    def __post_init__(self):
        if self.severity not in SEVERITIES:
            raise ValueError(f"severity must be one of {SEVERITIES}, not {self.severity!r}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self) | {"metrics": list(self.metrics)}


@dataclass(frozen=True)
class Result:
    """What one analyzer found. `metrics` are flat ("<prefix>.<name>" -> float) and gateable;
    `intervals` holds confidence intervals (low, high) for some of them."""

    analyzer: str
    status: str = "ok"
    metrics: Mapping[str, float] = field(default_factory=dict)
    intervals: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    tables: Mapping[str, pd.DataFrame] = field(default_factory=dict)
    arrays: Mapping[str, np.ndarray] = field(default_factory=dict)
    figures: tuple[Figure, ...] = ()
    config: Mapping = field(default_factory=dict)
    details: Mapping = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    findings: tuple[Finding, ...] = ()
    error: str | None = None
    seconds: float = 0.0
    summary: object | None = None  # the analyzer's typed judgement (e.g. a FairnessSummary) its findings read
    notes: Mapping[str, str] = field(default_factory=dict)  # table name -> what the reader must know about it
    drivers: Mapping[str, str] = field(default_factory=dict)  # metric -> what drives it, e.g. "sex: Female vs Male"
    caveat: str = ""  # why these metrics must not be read as better or worse (compare flags them)
    title: str = ""  # a section that is no registered analyzer's (e.g. a mitigation sweep)
    figure_tables: tuple[str, ...] = ()  # tables a figure already shows: the JSON keeps them, the HTML does not
    # One row per example the analyzer read, indexed by its position in the data it was given (the executor maps
    # that to the row of the audited data), columns named "<prefix>.<what>": `AuditRun.examples()` joins them.
    # Not in `to_dict`: the JSON stays the size of the summary.
    examples: pd.DataFrame | None = field(default=None, repr=False, compare=False)

    def __post_init__(self):
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, not {self.status!r}")
        for name in self.metrics:
            if not name.startswith(self.analyzer_prefix + "."):
                raise ValueError(f"metric {name!r} must start with {self.analyzer_prefix!r}.")
        for name in self.examples.columns if self.examples is not None else ():
            if not str(name).startswith(self.analyzer_prefix + "."):
                raise ValueError(f"per-example column {name!r} must start with {self.analyzer_prefix!r}.")

    def __repr__(self) -> str:
        status = {"ok": "ran", "error": f"errored: {self.error}", "skipped": "skipped"}[self.status]
        counts = ", ".join(f"{n} {s}" for s in SEVERITIES if (n := sum(f.severity == s for f in self.findings)))
        return (f"Result({self.analyzer} {status}, {len(self.metrics)} metrics, "
                f"findings: {counts or 'none'}, {self.seconds:.1f} s)")

    @property
    def analyzer_prefix(self) -> str:
        from audit.core.analyzer import ANALYZERS  # the registry holds the analyzers, which return Results

        return ANALYZERS.get(self.analyzer).metric_prefix if self.analyzer in ANALYZERS else self.analyzer

    def to_dict(self) -> dict:
        """JSON-ready: metrics, tables as records, config and details; arrays by shape only."""
        return {
            "analyzer": self.analyzer,
            "status": self.status,
            "seconds": round(self.seconds, 3),
            "config": _jsonable(dict(self.config)),
            "metrics": {k: _json_number(v) for k, v in self.metrics.items()},
            "intervals": {k: [_json_number(lo), _json_number(hi)] for k, (lo, hi) in self.intervals.items()},
            "tables": {k: _jsonable(t.reset_index().to_dict(orient="records")) for k, t in self.tables.items()},
            "arrays": {k: list(np.shape(v)) for k, v in self.arrays.items()},
            "figures": [f.title for f in self.figures],
            "details": _jsonable(dict(self.details)),
            "warnings": list(self.warnings),
            "findings": [f.to_dict() for f in self.findings],
            "error": self.error,
        }

    def _repr_html_(self) -> str:
        return html_of(self)


def _json_number(value) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def _jsonable(value):
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return _json_number(value)
    if value is None or isinstance(value, (int, str)):
        return value
    return str(value)
