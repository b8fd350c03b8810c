"""The analyzer interface and the result every analyzer returns.

An analyzer is a frozen, keyword-only dataclass: its fields are its whole
configuration. `run(model, data, seed=...)` always returns a `Result`; the runner
turns an exception into a Result with status "error".

An analyzer whose numbers are functions of counts (performance, fairness) also gives
`tally(...)`: a `Tally` that adds up chunks of rows and their predictions, so a streamed
source of any size is audited in bounded memory, and its `run` is the same tally fed the
whole data once. Every other analyzer reads rows; a streamed run gives it a seeded sample.
"""

from __future__ import annotations

import base64
import dataclasses
import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

import numpy as np
import pandas as pd

from audit._util.errors import AuditInputError

if TYPE_CHECKING:
    from audit.core.dataset import Dataset
    from audit.core.groups import SensitiveValues
    from audit.core.model import Model

STATUSES = ("ok", "error", "skipped")
SEVERITIES = ("high", "medium", "low", "info")


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

    def __post_init__(self):
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, not {self.status!r}")
        for name in self.metrics:
            if not name.startswith(self.analyzer_prefix + "."):
                raise ValueError(f"metric {name!r} must start with {self.analyzer_prefix!r}.")

    def __repr__(self) -> str:
        status = {"ok": "ran", "error": f"errored: {self.error}", "skipped": "skipped"}[self.status]
        counts = ", ".join(f"{n} {s}" for s in SEVERITIES if (n := sum(f.severity == s for f in self.findings)))
        return (f"Result({self.analyzer} {status}, {len(self.metrics)} metrics, "
                f"findings: {counts or 'none'}, {self.seconds:.1f} s)")

    @property
    def analyzer_prefix(self) -> str:
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
        from audit.report.html import render_result

        return render_result(self)


class Analyzer(ABC):
    """Subclasses are `@dataclass(frozen=True, kw_only=True)` and set the class variables."""

    name: ClassVar[str]
    title: ClassVar[str]
    description: ClassVar[str]
    metric_prefix: ClassVar[str]
    metrics: ClassVar[Mapping[str, MetricSpec]] = {}
    default: ClassVar[bool] = True

    def supports(self, model: Model, data: Dataset) -> bool:
        return True

    @abstractmethod
    def run(self, model: Model, data: Dataset, *, seed: int = 0) -> Result:
        """Analyze `model` on `data`; deterministic for a given seed."""

    def config(self) -> dict:
        return dataclasses.asdict(self)

    def tally(self, model: Model, values: SensitiveValues, *, seed: int) -> Tally | None:
        """The counts this analyzer needs, to be fed chunk by chunk (`values`: every sensitive value of the
        whole data, counted); None when it needs rows."""
        return None


class Tally(ABC):
    """Sufficient statistics of one analyzer over the rows seen so far; they do not grow with rows."""

    @abstractmethod
    def add(self, chunk: Dataset, proba: np.ndarray, start: int) -> None:
        """Count `chunk` (rows `start`, `start + 1`, ... of the data) and the model's probabilities for it."""

    @abstractmethod
    def result(self, sample: Dataset) -> Result:
        """The analyzer's result from the counts; `sample` is the data, or a seeded sample of it where the
        analyzer also probes the model on examples (the text counterfactuals)."""


class AnalyzerRegistry:
    def __init__(self):
        self._classes: dict[str, type[Analyzer]] = {}

    def register(self, cls: type[Analyzer]) -> type[Analyzer]:
        if cls.name in self._classes:
            raise ValueError(f"analyzer {cls.name!r} is registered twice")
        self._classes[cls.name] = cls
        return cls

    def __contains__(self, name: str) -> bool:
        return name in self._classes

    def get(self, name: str) -> type[Analyzer]:
        if name not in self._classes:
            raise AuditInputError(f"unknown analyzer {name!r}; available: {', '.join(self._classes)}")
        return self._classes[name]

    def create(self, name: str, **options) -> Analyzer:
        cls = self.get(name)
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(options) - set(fields))
        if unknown:
            raise AuditInputError(
                f"analyzer {name!r} has no option(s) {', '.join(unknown)}; options: {', '.join(fields) or 'none'}"
            )
        for option, value in options.items():
            _check_option(name, option, fields[option], value)
        try:
            return cls(**options)
        except TypeError as exc:
            raise AuditInputError(f"analyzer {name!r}: {exc}") from None

    def classes(self) -> list[type[Analyzer]]:
        return list(self._classes.values())

    def defaults(self) -> list[str]:
        return [name for name, cls in self._classes.items() if cls.default]


ANALYZERS = AnalyzerRegistry()
register_analyzer = ANALYZERS.register


def _check_option(analyzer: str, option: str, spec: dataclasses.Field, value) -> None:
    """The option's value has its default's type (ints for floats allowed) and a sample count is positive."""
    default = spec.default if spec.default is not dataclasses.MISSING else None
    if default is None and value is not None and str(spec.type) in ("float | None", "int | None"):
        default = 0.0 if str(spec.type).startswith("float") else 0  # an optional number: check as a number
    expected = None
    if isinstance(default, bool):
        expected = "true or false" if not isinstance(value, bool) else None
    elif isinstance(default, (int, float)):
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not number or (isinstance(default, int) and not float(value).is_integer()):
            expected = "a whole number" if isinstance(default, int) else "a number"
    elif isinstance(default, str) and not isinstance(value, str):
        expected = "a string (quote it: --set name.option='\"text\"')"
    elif isinstance(default, tuple) and not isinstance(value, (list, tuple)):
        expected = "a list, e.g. [1, 2]"
    if expected:
        raise AuditInputError(f"analyzer {analyzer!r}: option {option} must be {expected}, found {value!r}")
    if option == "samples" and value is not None and (not isinstance(value, int) or value < 1):
        raise AuditInputError(f"analyzer {analyzer!r}: samples must be a whole number of at least 1, found {value!r}")


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
