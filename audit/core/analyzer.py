"""The analyzer interface, and the registry of analyzers.

An analyzer is a frozen, keyword-only dataclass: its fields are its whole
configuration. `run(model, data, seed=...)` always returns a `Result`; the executor
turns an exception into a Result with status "error". `findings(result, thresholds)`
is the analyzer's judgement of its own result, made in one place; the executor asks
for it once (`judged`).

An analyzer whose numbers are functions of counts (performance, fairness) also gives
`tally(...)`: a `Tally` that adds up chunks of rows and their predictions, so a streamed
source of any size is audited in bounded memory, and its `run` is the same tally fed the
whole data once. Every other analyzer reads rows; a streamed run gives it a seeded sample.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from audit._util.errors import AuditInputError
from audit.core.result import Finding, MetricSpec, Result, by_severity

if TYPE_CHECKING:
    from audit.core.dataset import Dataset
    from audit.core.groups import SensitiveValues
    from audit.core.model import Model


@dataclass(frozen=True)
class Cost:
    """What one run of an analyzer asks of the model, in example-passes: `forward` rows through the model
    without a gradient, `backward` rows through it and back (an input gradient). The plan turns them into
    seconds with the probe's time per example (audit.executor.plan)."""

    forward: float = 0.0
    backward: float = 0.0
    seconds: float = 0.0  # the analyzer's own work besides the model (fits, figures), CPU seconds of an idle core

    def __add__(self, other: Cost) -> Cost:
        return Cost(self.forward + other.forward, self.backward + other.backward, self.seconds + other.seconds)

    def __mul__(self, times: float) -> Cost:
        return Cost(self.forward * times, self.backward * times, self.seconds * times)


@dataclass(frozen=True)
class Probed:
    """What the plan's probe found on a few rows spread over the data, which `Analyzer.cost` may read: the share of
    them the model gets right, and each analyzer's own `pilot` of them, by the analyzer's name."""

    accuracy: float = 1.0
    pilots: Mapping[str, object] = dataclasses.field(default_factory=dict)


UNPROBED = Probed()  # no probe: the model right on every example, no pilots

MIN_EXAMPLES = 4  # the fewest examples a budget leaves an analyzer


class Analyzer(ABC):
    """Subclasses are `@dataclass(frozen=True, kw_only=True)` and set the class variables."""

    name: ClassVar[str]
    title: ClassVar[str]
    description: ClassVar[str]
    metric_prefix: ClassVar[str]
    metrics: ClassVar[Mapping[str, MetricSpec]] = {}
    headline: ClassVar[tuple[str, ...]] = ()  # the metrics a report's summary leads with, where a run has them
    concern: ClassVar[str] = "Evaluation"  # what a review reads its results as: a model card's section
    default: ClassVar[bool] = True
    needs_model: ClassVar[bool] = True  # False: it reads only the model's outputs, so predictions alone will do
    judged_by: ClassVar[str | None] = None  # the policy's threshold its findings judge the headline interval by

    def supports(self, model: Model, data: Dataset) -> bool:
        return True

    @abstractmethod
    def run(self, model: Model, data: Dataset, *, seed: int = 0) -> Result:
        """Analyze `model` on `data`; deterministic for a given seed."""

    def config(self) -> dict:
        return dataclasses.asdict(self)

    def check(self, model: Model) -> None:
        """Refuse, in one line (AuditInputError), a setting that cannot apply to `model`, e.g. a class it does not
        have: the executor asks every analyzer before it reads or predicts anything."""

    def findings(self, result: Result, thresholds: Mapping[str, float]) -> tuple[Finding, ...]:
        """What a reviewer must know from this analyzer's `result`, judged by the policy's `thresholds`; a
        finding is raised only where its interval supports it."""
        return ()

    def sample_rows(self, model: Model) -> int:
        """Rows of the data `run` reads (its `samples`, 0: none asked): a streamed run draws a seeded sample that
        large for the analyzers without a tally."""
        return getattr(self, "samples", None) or 0

    def headlines(self, model: Model) -> tuple[str, ...]:
        """The `headline` metrics a run on `model` gives (what a budget's cut names before the work)."""
        return self.headline

    def pilot(self, model: Model, data: Dataset) -> object | None:
        """A cheap trial of this analyzer's work on the plan's probe rows `data`, made once before the work, that
        its `cost` reads (`probed.pilots[name]`) where the passes depend on the model; None: its cost needs none."""
        return None

    def cost(self, model: Model, rows: int, *, probed: Probed = UNPROBED) -> Cost:
        """The passes `run` will make on data of `rows` rows, of which the model gets about `probed.accuracy`
        right, and its own seconds besides, from this configuration and what the probe found (the rows a tally
        counts are predicted once by the executor, and cost nothing here). The plan made before the work sums
        them; tests/test_plan.py counts the passes a run really makes against them."""
        return Cost()

    def sample_size(self, model: Model, rows: int) -> int:
        """Examples `run` works on, of data of `rows` rows (0: it reads counts, not examples)."""
        return min(self.sample_rows(model), rows)

    def scaled(self, model: Model, rows: int, share: float) -> Analyzer:
        """This analyzer working on about `share` of its examples (at least MIN_EXAMPLES): what a budget cuts.
        Per-example work is most of the cost of every analyzer that has examples; one that has none is kept."""
        examples = self.sample_size(model, rows)
        if not examples or "samples" not in self.config():
            return self
        return dataclasses.replace(self, samples=min(examples, max(MIN_EXAMPLES, int(examples * share))))

    def interval(self, result: Result) -> tuple[float, float] | None:
        """The interval of the first headline metric `result` has one for (None: none): what a precision target
        is met on (`audit.run(precision=...)` stops adding examples once it is that narrow)."""
        return next((tuple(result.intervals[m]) for m in self.headline if m in result.intervals), None)

    def decided(self, result: Result, thresholds: Mapping[str, float]) -> bool:
        """Whether more examples could not change this analyzer's judgement of `result`: its headline interval
        (`interval`) lies wholly on one side of the threshold `judged_by` names. What a budget stops adding
        examples at (audit.executor.loop); False where nothing is judged by an interval."""
        interval = self.interval(result) if self.judged_by is not None else None
        limit = thresholds.get(self.judged_by) if interval is not None else None
        return limit is not None and (interval[1] < limit or interval[0] >= limit)

    def tally(self, model: Model, values: SensitiveValues, *, seed: int) -> Tally | None:
        """The counts this analyzer needs, to be fed chunk by chunk (`values`: every sensitive value of the
        whole data, counted); None when it needs rows."""
        return None


class Tally(ABC):
    """Sufficient statistics of one analyzer over the rows seen so far; they do not grow with rows."""

    sample_rows: int = 0  # rows of the data's sample that `result` reads (a streamed run draws that many)

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


def judged(analyzer: Analyzer, result: Result, thresholds: Mapping[str, float]) -> Result:
    """`result` with its analyzer's findings, high first. A judgement that fails says so in a finding: a run
    without findings must not read as a run without problems."""
    if result.status != "ok":
        return result
    try:
        found = analyzer.findings(result, thresholds)
    except Exception as exc:  # noqa: BLE001 - the analyzer's numbers stand; the judgement says it is missing
        found = (Finding("medium", f"The findings of this analyzer could not be derived ({type(exc).__name__}: "
                                   f"{exc}); its numbers are shown unjudged.",
                         why="A run without findings must not read as a run without problems.",
                         next="Read this section's metrics against the default policy by hand, and report the "
                              "error."),)
    return dataclasses.replace(result, findings=by_severity(found))
