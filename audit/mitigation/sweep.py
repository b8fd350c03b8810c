"""A mitigation swept over its strength: accuracy against disparity, the Pareto front, and the point to keep.

Each value of the grid gives one model: group thresholds fitted with fairlearn's relaxed
demographic parity (`tol`: 1 is no constraint, 0 strict; fairlearn relaxes no other
constraint), or a training method retrained at a `strength`. Every point is measured on the
same rows, the data the comparison then audits: balanced accuracy with the MOVER interval of
the mean class recall (audit.fairness.intervals.mean_rate_interval), and the disparity the
method equalizes (demographic parity or equalized odds difference over the sensitive column's
groups, every group present) with the fairness analyzer's interval of the worst gap
(audit.fairness.intervals.worst_gap_interval, at the analyzer's confidence).

The Pareto front: the points no other point beats on both estimates (higher balanced
accuracy, lower disparity). The chosen point: the most accurate one whose disparity upper
bound is at most the limit (the bound a `use = "upper"` gate reads); where none is, the one
with the lowest upper bound, and the sweep says that it fails. The choice reads the rows the
comparison reports, so the comparison's numbers for the chosen model are the best of a few
(as many as the grid has points).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import matplotlib
import numpy as np
import pandas as pd

from audit.analyzers.base import Finding, Result
from audit.data.dataset import Dataset
from audit.errors import AuditInputError
from audit.fairness.intervals import mean_rate_interval, worst_gap_interval
from audit.fairness.metrics import COMPARES, confusion_by_group, disparities_from_cells, rate_counts
from audit.mitigation.fair_training import METHODS as TRAINING_METHODS
from audit.mitigation.fair_training import Mitigation
from audit.mitigation.postprocess import group_column, positive_index, with_thresholds
from audit.mitigation.retrain import retrain
from audit.model import Model
from audit.policy import Policy
from audit.progress import steps
from audit.report.plots import PLAIN_TEXT, new_figure, to_figure, wrapped

SECTION = "mitigation_sweep"
METHODS = ("thresholds", *(m for m in TRAINING_METHODS if m != "reweighing"))  # reweighing has no strength
DISPARITY = {"demographic_parity": "demographic_parity_difference", "equalized_odds": "equalized_odds_difference"}
# From no constraint to strict: the first point is the unmitigated end.
DEFAULT_GRID = {"tol": (1.0, 0.2, 0.1, 0.05, 0.02, 0.0), "strength": (0.0, 0.25, 0.5, 1.0, 2.0, 4.0)}
MAX_POINTS = 50


@dataclass(frozen=True)
class SweepPoint:
    value: float  # of the knob: tol or strength
    model: Model
    balanced_accuracy: float
    accuracy_interval: tuple[float, float]
    disparity: float
    disparity_interval: tuple[float, float]


@dataclass(frozen=True)
class Sweep:
    """The points of a sweep, in the grid's order from weakest to strictest, and the one chosen."""

    method: str
    column: str
    metric: str  # the disparity: demographic_parity_difference or equalized_odds_difference
    limit: float
    confidence: float
    points: tuple[SweepPoint, ...]

    @property
    def knob(self) -> str:
        return "tol" if self.method == "thresholds" else "strength"

    @property
    def front(self) -> np.ndarray:
        return pareto_front([p.balanced_accuracy for p in self.points], [p.disparity for p in self.points])

    @property
    def chosen(self) -> int:
        return choose([p.balanced_accuracy for p in self.points], [p.disparity_interval[1] for p in self.points],
                      self.limit)

    @property
    def passes(self) -> bool:
        return bool(self.points[self.chosen].disparity_interval[1] <= self.limit)

    @property
    def model(self) -> Model:
        return self.points[self.chosen].model

    def table(self) -> pd.DataFrame:
        front, chosen = self.front, self.chosen
        return pd.DataFrame([{
            self.knob: p.value, "balanced_accuracy": p.balanced_accuracy, "accuracy_low": p.accuracy_interval[0],
            "accuracy_high": p.accuracy_interval[1], self.metric: p.disparity, "disparity_low": p.disparity_interval[0],
            "disparity_high": p.disparity_interval[1], "within_limit": bool(p.disparity_interval[1] <= self.limit),
            "pareto_front": bool(front[i]), "chosen": i == chosen} for i, p in enumerate(self.points)])

    def summary(self) -> str:
        point = self.points[self.chosen]
        verdict = "within" if self.passes else "over: no point is within"
        return (f"swept {self.method} over {len(self.points)} values of {self.knob}, kept {self.knob} "
                f"{point.value:g}: balanced accuracy {point.balanced_accuracy:.3f}, {self.metric} "
                f"{point.disparity:.3f}, upper bound {point.disparity_interval[1]:.3f} ({verdict} the limit "
                f"{self.limit:g})")

    def result(self) -> Result:
        """The sweep as a report section: the trade-off figure, the table of points, the choice as a finding."""
        point = self.points[self.chosen]
        words = self.metric.replace("_", " ")
        measured = (f"balanced accuracy {point.balanced_accuracy:.3f} [{point.accuracy_interval[0]:.3f}, "
                    f"{point.accuracy_interval[1]:.3f}], {words} by {self.column} {point.disparity:.3f} "
                    f"[{point.disparity_interval[0]:.3f}, {point.disparity_interval[1]:.3f}]")
        if self.passes:
            finding = Finding("info", f"Chosen: {self.knob} {point.value:g} ({measured}), the most accurate point "
                                      f"whose {words} upper bound is within {self.limit:g}.")
        else:
            finding = Finding("medium", f"No point of the sweep has a {words} upper bound within {self.limit:g}; "
                                        f"the lowest is kept: {self.knob} {point.value:g} ({measured}).",
                              next="Sweep further (a stricter --grid) or consider another method.")
        details = {"method": self.method, "knob": self.knob, "column": self.column, "disparity": self.metric,
                   "limit": self.limit, "confidence": self.confidence, "chosen": self.chosen,
                   "passes": self.passes}
        return Result(analyzer=SECTION, tables={"sweep": self.table()}, figures=(tradeoff_figure(self),),
                      details=details, findings=(finding,))


def sweep(model: Model, data: Dataset, *, method: str, column: str, max_disparity: float,
          constraint: str = "demographic_parity", grid: Sequence[float] | None = None,
          validation: Dataset | None = None, confidence: float = 0.95, seed: int = 0,
          positive_class: str | None = None) -> Sweep:
    """`model` mitigated by `method` at each value of `grid` (thresholds: fairlearn's tol, fitted on
    `validation`; lagrangian, adversarial_debiasing: the strength, retrained as the checkpoint records), each
    measured on `data`; the chosen point's disparity upper bound is within `max_disparity` where any is."""
    knob = check_sweepable(method, constraint)
    if method == "thresholds" and validation is None:
        raise AuditInputError("a thresholds sweep needs validation data to fit the thresholds on")
    if isinstance(max_disparity, bool) or not isinstance(max_disparity, (int, float)) or not 0 <= max_disparity <= 1:
        raise AuditInputError(f"the disparity limit must be a number from 0 to 1, found {max_disparity!r}")
    if isinstance(confidence, bool) or not isinstance(confidence, (int, float)) or not 0 < confidence < 1:
        raise AuditInputError(f"the confidence of the intervals must lie between 0 and 1, found {confidence!r}")
    grid = checked_grid(DEFAULT_GRID[knob] if grid is None else grid, knob)
    positive = positive_index(model, positive_class)

    def fit(value: float) -> Model:
        if method == "thresholds":
            return with_thresholds(model, validation, column=column, constraint=constraint, seed=seed,
                                   positive_class=positive_class, tol=value)[0]
        mitigation = Mitigation(method=method, sensitive=column, constraint=constraint, strength=value,
                                positive=positive)
        return retrain(model, mitigation, quiet=True).model

    metric = DISPARITY[constraint]
    points = tuple(measure(fit(value), data, value, column=column, metric=metric, positive=positive,
                           confidence=confidence)
                   for value in steps(grid, desc=f"sweep {method}", name=lambda v: f"{knob} {v:g}"))
    return Sweep(method, column, metric, float(max_disparity), confidence, points)


def check_sweepable(method: str, constraint: str) -> str:
    """The knob a sweep of `method` varies, where `method` and `constraint` can be swept."""
    if method not in METHODS:
        raise AuditInputError(f"a sweep needs a method with a strength to vary: one of {', '.join(METHODS)}, "
                              f"found {method!r}")
    if constraint not in DISPARITY:
        raise AuditInputError(f"constraint must be one of {', '.join(DISPARITY)}, found {constraint!r}")
    if method == "thresholds" and constraint != "demographic_parity":
        raise AuditInputError("a thresholds sweep relaxes demographic_parity only (fairlearn's ThresholdOptimizer "
                              "has no tol for equalized_odds); sweep lagrangian or adversarial_debiasing instead")
    return "tol" if method == "thresholds" else "strength"


def measure(model: Model, data: Dataset, value: float, *, column: str, metric: str, positive: int,
            confidence: float) -> SweepPoint:
    """Balanced accuracy and the disparity `metric` by `column` of `model`'s decisions on `data`, with intervals."""
    labels, pred = model.labels(data), model.predict(data)
    classes = np.arange(len(model.classes))
    correct = np.array([np.sum((labels == c) & (pred == c)) for c in classes])
    accuracy, low, high = mean_rate_interval(correct, np.bincount(labels, minlength=len(classes)), confidence)
    table = confusion_by_group(labels == positive, pred == positive, group_column(data, column).astype(str))
    disparity = float(disparities_from_cells(table.to_numpy(dtype=np.float64)[None])[metric][0])
    interval = worst_gap_interval([rate_counts(table, rate) for rate in COMPARES[metric][0]], confidence)
    return SweepPoint(float(value), model, accuracy, (low, high), disparity, interval)


def pareto_front(accuracy: Sequence[float], disparity: Sequence[float]) -> np.ndarray:
    """Whether each point is on the front: no other point has at least its accuracy and at most its disparity,
    and is better in one. A point with a missing number is on no front and dominates none."""
    a, d = np.asarray(accuracy, dtype=float), np.asarray(disparity, dtype=float)
    finite = np.isfinite(a) & np.isfinite(d)
    as_good = (a[None, :] >= a[:, None]) & (d[None, :] <= d[:, None])  # [i, j]: j is as good as i on both
    better = (a[None, :] > a[:, None]) | (d[None, :] < d[:, None])
    return finite & ~(as_good & better & finite[None, :]).any(axis=1)


def choose(accuracy: Sequence[float], upper: Sequence[float], limit: float) -> int:
    """The most accurate point whose disparity upper bound is within `limit` (ties: the lower bound, then the
    first); where none is, the point with the lowest upper bound."""
    a, u = np.asarray(accuracy, dtype=float), np.asarray(upper, dtype=float)
    within = [i for i in range(len(a)) if u[i] <= limit and np.isfinite(a[i])]
    if within:
        return min(within, key=lambda i: (-a[i], u[i], i))
    measured = [i for i in range(len(a)) if np.isfinite(u[i])]
    if not measured:
        raise AuditInputError("no point of the sweep has a disparity: the data hold fewer than two groups")
    return min(measured, key=lambda i: (u[i], -np.nan_to_num(a[i], nan=-1.0), i))


def checked_grid(values: Sequence[float], knob: str) -> tuple[float, ...]:
    """The grid's distinct values, from the weakest constraint to the strictest."""
    allowed = "numbers from 0 to 1" if knob == "tol" else "numbers of at least 0"
    values = list(values)
    bad = [v for v in values if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v)
           or v < 0 or (knob == "tol" and v > 1)]
    if bad or not 2 <= len(set(values)) <= MAX_POINTS:
        found = f"found {bad[0]!r}" if bad else f"found {len(set(values))} distinct value(s)"
        raise AuditInputError(f"--grid: the {knob} values must be 2 to {MAX_POINTS} distinct {allowed}; {found}")
    return tuple(sorted({float(v) for v in values}, reverse=knob == "tol"))


def parse_grid(text: str, knob: str) -> tuple[float, ...]:
    """`--grid 0,0.5,1`: comma-separated values of the knob."""
    values = []
    for part in text.split(","):
        try:
            values.append(float(part))
        except ValueError:
            raise AuditInputError(f"--grid {text!r}: {part.strip()!r} is not a number; expected comma-separated "
                                  f"{knob} values, e.g. {','.join(f'{v:g}' for v in DEFAULT_GRID[knob][:3])}") from None
    return checked_grid(values, knob)


def gate_limit(policy: Policy | None, column: str, metric: str) -> float | None:
    """The strictest `max` of the policy's gates on the disparity, by `column` or over every feature."""
    limits = [g.max for g in (policy.gates if policy else ())
              if g.metric in (f"fairness.{column}.{metric}", f"fairness.{metric}") and g.max is not None]
    return min(limits) if limits else None


def tradeoff_figure(swept: Sweep):
    """Balanced accuracy against the disparity, with intervals, the Pareto front and the chosen point."""
    table, words = swept.table(), swept.metric.replace("_", " ")
    x, y = table[swept.metric].to_numpy(), table["balanced_accuracy"].to_numpy()
    xerr = np.array([x - table["disparity_low"], table["disparity_high"] - x]).clip(min=0)
    yerr = np.array([y - table["accuracy_low"], table["accuracy_high"] - y]).clip(min=0)
    front = table[table["pareto_front"]].sort_values(swept.metric)
    chosen = table.iloc[swept.chosen]
    with matplotlib.rc_context(PLAIN_TEXT):
        fig, ax = new_figure(6.0, 4.2)
        ax.errorbar(x, y, xerr=xerr, yerr=yerr, fmt="o", color="#4c78a8", ecolor="#9ab", capsize=3, markersize=5,
                    label="points (bars: intervals)")
        ax.plot(front[swept.metric], front["balanced_accuracy"], "-", color="#f58518", linewidth=1.5,
                label="Pareto front")
        ax.plot(chosen[swept.metric], chosen["balanced_accuracy"], "*", color="#d62728", markersize=16,
                label=f"chosen: {swept.knob} {chosen[swept.knob]:g}")
        ax.axvline(swept.limit, color="#888", linestyle="--", linewidth=1, label=f"limit {swept.limit:g}")
        labels: dict[tuple[float, float], list[str]] = {}  # points that coincide share one label
        for value, xi, yi in zip(table[swept.knob], x, y):
            labels.setdefault((xi, yi), []).append(f"{value:g}")
        for (xi, yi), values in labels.items():
            ax.annotate(", ".join(values), (xi, yi), fontsize=7, xytext=(4, 4), textcoords="offset points")
        ax.set_xlabel(wrapped(f"{words} by {swept.column}", 60))
        ax.set_ylabel("balanced accuracy")
        ax.legend(fontsize=7, loc="lower right")
        return to_figure(fig, title="Accuracy against disparity", caption=(
            f"Each point is the model mitigated by {swept.method} at the {swept.knob} its label gives, measured on "
            f"the same rows; bars are {swept.confidence:.0%} intervals (balanced accuracy: MOVER from Wilson "
            f"intervals of each class's recall; {words}: the fairness analyzer's score interval). The line joins "
            f"the Pareto front (no other point is both more accurate and fairer); the star is the point written, "
            f"the most accurate whose upper bound is left of the dashed limit."))
