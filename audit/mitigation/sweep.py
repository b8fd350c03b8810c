"""A mitigation swept over its strength: accuracy against what it buys, the Pareto front, and the point to keep.

Fairness. Each value of the grid gives one model: group thresholds fitted with fairlearn's
relaxed demographic parity (`tol`: 1 is no constraint, 0 strict; fairlearn relaxes no other
constraint), or a training method retrained at a `strength`. Every point is measured on the
same rows, the data the comparison then audits: balanced accuracy with the MOVER interval of
the mean class recall (audit.methods.fairness.intervals.mean_rate_interval), and the disparity the
method equalizes (demographic parity or equalized odds difference over the sensitive column's
groups, every group present) with the fairness analyzer's interval of the worst gap
(audit.methods.fairness.intervals.worst_gap_interval, at the analyzer's confidence).

Robustness. `pgd`: the model retrained with PGD adversarial training at each training
`epsilon` (0: plain training), measured on a seeded sample of the same rows: clean accuracy and
accuracy under the robustness analyzer's PGD at its evaluation epsilon (an example counts when it
is right before and after the attack, as robustness.pgd_accuracy counts it), each with its
continuity-corrected Wilson interval.

The Pareto front: the points no other point beats on both estimates (higher accuracy, and lower
disparity or higher PGD accuracy). The chosen point: the most accurate one whose interval's gate
side is within the limit (the disparity's upper bound at most the limit, the PGD accuracy's lower
bound at least it: what a `use = "upper"` or `"lower"` gate reads); where none is, the one nearest
to it, and the sweep says that it fails. The choice reads the rows the comparison reports, so the
comparison's numbers for the chosen model are the best of a few (as many as the grid has points).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import matplotlib
import numpy as np
import pandas as pd
import torch

from audit.core.result import Finding, Result
from audit.analyzers.robustness.analyzer import DEFAULT_SAMPLES
from audit.analyzers.robustness.epsilons import default_epsilon
from audit.core.dataset import Dataset
from audit._util.errors import AuditInputError
from audit.methods.fairness.intervals import mean_rate_interval, worst_gap_interval
from audit.methods.fairness.metrics import COMPARES, confusion_by_group, disparities_from_cells, rate_counts
from audit.models.adversarial_training import AdversarialTraining
from audit.models.fair_training import METHODS as TRAINING_METHODS
from audit.models.fair_training import Mitigation
from audit.mitigation.postprocess import group_column, positive_index, with_thresholds
from audit.mitigation.retrain import retrain
from audit.core.model import Model
from audit.policy.gates import Policy
from audit._util.progress import steps
from audit.plots import PLAIN_TEXT, new_figure, to_figure, wrapped
from audit.methods.robustness.attacks import PGD, pgd
from audit.methods.robustness.domain import input_domain

SECTION = "mitigation_sweep"
ROBUST = "pgd_accuracy"  # the robustness sweep's measure; higher is better, unlike a disparity
# reweighing has no strength; pgd is adversarial training over its epsilon
METHODS = ("thresholds", *(m for m in TRAINING_METHODS if m != "reweighing"), "pgd")
DISPARITY = {"demographic_parity": "demographic_parity_difference", "equalized_odds": "equalized_odds_difference"}
# From no constraint to strict: the first point is the unmitigated end. The epsilons are multiples of the
# robustness analyzer's default epsilon for the data.
DEFAULT_GRID = {"tol": (1.0, 0.2, 0.1, 0.05, 0.02, 0.0), "strength": (0.0, 0.25, 0.5, 1.0, 2.0, 4.0),
                "epsilon": (0.0, 0.5, 1.0, 2.0)}
MAX_POINTS = 50


@dataclass(frozen=True)
class SweepPoint:
    value: float  # of the knob: tol, strength or epsilon
    model: Model
    accuracy: float  # balanced accuracy (fairness) or clean accuracy (robustness)
    accuracy_interval: tuple[float, float]
    measured: float  # the disparity, or the PGD accuracy
    measured_interval: tuple[float, float]


@dataclass(frozen=True)
class Sweep:
    """The points of a sweep, in the grid's order from weakest to strictest, and the one chosen."""

    method: str
    column: str | None  # the sensitive column (fairness)
    metric: str  # demographic_parity_difference, equalized_odds_difference or pgd_accuracy
    limit: float
    confidence: float
    points: tuple[SweepPoint, ...]
    epsilon: float | None = None  # the PGD accuracy's evaluation epsilon

    @property
    def knob(self) -> str:
        return knob_of(self.method)

    @property
    def accuracy_name(self) -> str:
        return "clean_accuracy" if self.metric == ROBUST else "balanced_accuracy"

    @property
    def _sign(self) -> float:
        """+1 where lower is better (a disparity), -1 where higher is (PGD accuracy): sign * value is minimized."""
        return -1.0 if self.metric == ROBUST else 1.0

    def _gate_bound(self, point: SweepPoint) -> float:
        return point.measured_interval[0] if self.metric == ROBUST else point.measured_interval[1]

    def _within(self, point: SweepPoint) -> bool:
        return bool(self._sign * self._gate_bound(point) <= self._sign * self.limit)

    @property
    def front(self) -> np.ndarray:
        return pareto_front([p.accuracy for p in self.points], [self._sign * p.measured for p in self.points])

    @property
    def chosen(self) -> int:
        return choose([p.accuracy for p in self.points], [self._sign * self._gate_bound(p) for p in self.points],
                      self._sign * self.limit)

    @property
    def passes(self) -> bool:
        return self._within(self.points[self.chosen])

    @property
    def model(self) -> Model:
        return self.points[self.chosen].model

    def table(self) -> pd.DataFrame:
        front, chosen = self.front, self.chosen
        return pd.DataFrame([{
            self.knob: p.value, self.accuracy_name: p.accuracy, "accuracy_low": p.accuracy_interval[0],
            "accuracy_high": p.accuracy_interval[1], self.metric: p.measured, "low": p.measured_interval[0],
            "high": p.measured_interval[1], "within_limit": self._within(p), "pareto_front": bool(front[i]),
            "chosen": i == chosen} for i, p in enumerate(self.points)])

    def _words(self) -> tuple[str, str, str]:
        """The measure, its gate side and how the limit reads, in words."""
        if self.metric == ROBUST:
            return f"PGD accuracy at epsilon {self.epsilon:.3g}", "lower bound", f"at least {self.limit:g}"
        return f"{self.metric.replace('_', ' ')} by {self.column}", "upper bound", f"within {self.limit:g}"

    def summary(self) -> str:
        point = self.points[self.chosen]
        measure, bound, limit = self._words()
        verdict = "" if self.passes else "; no point is"
        return (f"swept {self.method} over {len(self.points)} values of {self.knob}, kept {self.knob} "
                f"{point.value:g}: {self.accuracy_name.replace('_', ' ')} {point.accuracy:.3f}, {measure} "
                f"{point.measured:.3f}, {bound} {self._gate_bound(point):.3f} (the limit: {limit}{verdict})")

    def result(self) -> Result:
        """The sweep as a report section: the trade-off figure, the table of points, the choice as a finding."""
        point = self.points[self.chosen]
        measure, bound, limit = self._words()
        measured = (f"{self.accuracy_name.replace('_', ' ')} {point.accuracy:.3f} [{point.accuracy_interval[0]:.3f}, "
                    f"{point.accuracy_interval[1]:.3f}], {measure} {point.measured:.3f} "
                    f"[{point.measured_interval[0]:.3f}, {point.measured_interval[1]:.3f}]")
        if self.passes:
            finding = Finding("info", f"Chosen: {self.knob} {point.value:g} ({measured}), the most accurate point "
                                      f"whose {measure} {bound} is {limit}.")
        else:
            finding = Finding("medium", f"No point of the sweep has a {measure} {bound} {limit}; the nearest is "
                                        f"kept: {self.knob} {point.value:g} ({measured}).",
                              next="Sweep further (a stricter --grid) or consider another method.")
        details = {"method": self.method, "knob": self.knob, "column": self.column, "measure": self.metric,
                   "epsilon": self.epsilon, "limit": self.limit, "confidence": self.confidence,
                   "chosen": self.chosen, "passes": self.passes}
        return Result(analyzer=SECTION, tables={"sweep": self.table()}, figures=(tradeoff_figure(self),),
                      details=details, findings=(finding,), title="Mitigation trade-off")


def sweep(model: Model, data: Dataset, *, method: str, limit: float, column: str | None = None,
          constraint: str = "demographic_parity", grid: Sequence[float] | None = None,
          validation: Dataset | None = None, adversarial: AdversarialTraining = AdversarialTraining(),
          epsilon: float | None = None, samples: int | None = None, confidence: float = 0.95, seed: int = 0,
          positive_class: str | None = None) -> Sweep:
    """`model` mitigated by `method` at each value of `grid`, each measured on `data`.

    thresholds: fairlearn's tol, fitted on `validation`; lagrangian, adversarial_debiasing: the strength,
    retrained as the checkpoint records; both equalize `constraint` over `column`, and `limit` is the most the
    disparity's upper bound may be. pgd: the training epsilon of `adversarial` (its steps and share; 0 is plain
    training); PGD accuracy at `epsilon` (default: the robustness analyzer's) on `samples` rows (default: its
    sample size), and `limit` is the least its lower bound may be."""
    knob = check_sweepable(method, constraint)
    if method == "thresholds" and validation is None:
        raise AuditInputError("a thresholds sweep needs validation data to fit the thresholds on")
    if method != "pgd" and column is None:
        raise AuditInputError(f"a {method} sweep needs the sensitive column to equalize over")
    if isinstance(limit, bool) or not isinstance(limit, (int, float)) or not 0 <= limit <= 1:
        raise AuditInputError(f"the sweep's limit must be a number from 0 to 1, found {limit!r}")
    if isinstance(confidence, bool) or not isinstance(confidence, (int, float)) or not 0 < confidence < 1:
        raise AuditInputError(f"the confidence of the intervals must lie between 0 and 1, found {confidence!r}")
    positive = positive_index(model, positive_class)
    if epsilon is not None and (isinstance(epsilon, bool) or not isinstance(epsilon, (int, float))
                                or not 0 < epsilon < float("inf")):
        raise AuditInputError(f"the PGD accuracy's epsilon must be a positive number, found {epsilon!r}")
    if method == "pgd":
        if model.modality == "text":
            raise AuditInputError("adversarial training needs continuous inputs (images or tables), not text")
        domain = input_domain(model, data, model.encode(data))  # as the robustness analyzer takes it
        default = default_epsilon(model.modality, "linf", domain)
        epsilon = epsilon or default
        grid = tuple(m * default for m in DEFAULT_GRID[knob]) if grid is None else grid
        sample = data.sample(samples or DEFAULT_SAMPLES[model.modality], seed=seed)
    grid = checked_grid(DEFAULT_GRID[knob] if grid is None else grid, knob)

    def fit(value: float) -> Model:
        if method == "thresholds":
            return with_thresholds(model, validation, column=column, constraint=constraint, seed=seed,
                                   positive_class=positive_class, tol=value)[0]
        if method == "pgd":
            hardened = replace(adversarial, epsilon=value) if value > 0 else None
            return retrain(model, adversarial=hardened, quiet=True).model
        mitigation = Mitigation(method=method, sensitive=column, constraint=constraint, strength=value,
                                positive=positive)
        return retrain(model, mitigation, quiet=True).model

    def measured(value: float) -> SweepPoint:
        if method == "pgd":
            return measure_robustness(fit(value), sample, value, epsilon=epsilon, domain=domain,
                                      confidence=confidence, seed=seed)
        return measure(fit(value), data, value, column=column, metric=DISPARITY[constraint], positive=positive,
                       confidence=confidence)

    points = tuple(measured(v) for v in steps(grid, desc=f"sweep {method}", name=lambda v: f"{knob} {v:g}"))
    if method == "pgd":
        return Sweep(method, None, ROBUST, float(limit), confidence, points, epsilon=float(epsilon))
    return Sweep(method, column, DISPARITY[constraint], float(limit), confidence, points)


def knob_of(method: str) -> str:
    return {"thresholds": "tol", "pgd": "epsilon"}.get(method, "strength")


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
    return knob_of(method)


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


def measure_robustness(model: Model, sample: Dataset, value: float, *, epsilon: float, domain, confidence: float,
                       seed: int) -> SweepPoint:
    """Clean accuracy and PGD accuracy at `epsilon` (the robustness analyzer's PGD settings) on `sample`, each
    with its continuity-corrected Wilson interval."""
    x, y = model.encode(sample), torch.from_numpy(model.labels(sample))
    correct = model.proba(x).argmax(1) == y.numpy()
    adversarial = pgd(model, x, y, epsilon, domain, config=PGD(), seed=seed)
    robust = correct & (model.proba(adversarial).argmax(1) == y.numpy())
    clean, clean_low, clean_high = mean_rate_interval([correct.sum()], [len(y)], confidence)
    kept, kept_low, kept_high = mean_rate_interval([robust.sum()], [len(y)], confidence)
    return SweepPoint(float(value), model, clean, (clean_low, clean_high), kept, (kept_low, kept_high))


def pareto_front(accuracy: Sequence[float], disparity: Sequence[float]) -> np.ndarray:
    """Whether each point is on the front: no other point has at least its accuracy and at most its disparity
    (or any cost to minimize: a negated PGD accuracy), and is better in one. A point with a missing number is on
    no front and dominates none."""
    a, d = np.asarray(accuracy, dtype=float), np.asarray(disparity, dtype=float)
    finite = np.isfinite(a) & np.isfinite(d)
    as_good = (a[None, :] >= a[:, None]) & (d[None, :] <= d[:, None])  # [i, j]: j is as good as i on both
    better = (a[None, :] > a[:, None]) | (d[None, :] < d[:, None])
    return finite & ~(as_good & better & finite[None, :]).any(axis=1)


def choose(accuracy: Sequence[float], upper: Sequence[float], limit: float) -> int:
    """The most accurate point whose disparity upper bound (or any bound to keep low: a negated lower bound) is
    within `limit` (ties: the lower bound, then the first); where none is, the point with the lowest bound."""
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


def gate_limit(policy: Policy | None, metric: str, column: str | None = None) -> float | None:
    """The strictest limit of the policy's gates on the sweep's measure: the smallest `max` on the disparity
    (by `column` or over every feature), or the largest `min` on robustness.pgd_accuracy."""
    gates = policy.gates if policy else ()
    if metric == ROBUST:
        limits = [g.min for g in gates if g.metric == f"robustness.{ROBUST}" and g.min is not None]
        return max(limits) if limits else None
    limits = [g.max for g in gates
              if g.metric in (f"fairness.{column}.{metric}", f"fairness.{metric}") and g.max is not None]
    return min(limits) if limits else None


def tradeoff_figure(swept: Sweep):
    """Accuracy against the measure, with intervals, the Pareto front, the limit and the chosen point."""
    table, (words, bound, _) = swept.table(), swept._words()
    accuracy = swept.accuracy_name
    x, y = table[swept.metric].to_numpy(), table[accuracy].to_numpy()
    xerr = np.array([x - table["low"], table["high"] - x]).clip(min=0)
    yerr = np.array([y - table["accuracy_low"], table["accuracy_high"] - y]).clip(min=0)
    front = table[table["pareto_front"]].sort_values(swept.metric)
    chosen = table.iloc[swept.chosen]
    with matplotlib.rc_context(PLAIN_TEXT):
        fig, ax = new_figure(6.0, 4.2)
        ax.errorbar(x, y, xerr=xerr, yerr=yerr, fmt="o", color="#4c78a8", ecolor="#9ab", capsize=3, markersize=5,
                    label="points (bars: intervals)")
        ax.plot(front[swept.metric], front[accuracy], "-", color="#f58518", linewidth=1.5, label="Pareto front")
        ax.plot(chosen[swept.metric], chosen[accuracy], "*", color="#d62728", markersize=16,
                label=f"chosen: {swept.knob} {chosen[swept.knob]:.3g}")
        ax.axvline(swept.limit, color="#888", linestyle="--", linewidth=1, label=f"limit {swept.limit:g}")
        labels: dict[tuple[float, float], list[str]] = {}  # points that coincide share one label
        for value, xi, yi in zip(table[swept.knob], x, y):
            labels.setdefault((xi, yi), []).append(f"{value:.3g}")
        for (xi, yi), values in labels.items():
            ax.annotate(", ".join(values), (xi, yi), fontsize=7, xytext=(4, 4), textcoords="offset points")
        ax.set_xlabel(wrapped(words, 60))
        ax.set_ylabel(accuracy.replace("_", " "))
        ax.legend(fontsize=7, loc="lower right" if swept.metric != ROBUST else "lower left")
        if swept.metric == ROBUST:
            how = f"clean accuracy and accuracy under PGD; bars are {swept.confidence:.0%} Wilson intervals"
            side = "right"
        else:
            how = (f"bars are {swept.confidence:.0%} intervals (balanced accuracy: MOVER from Wilson intervals of "
                   f"each class's recall; {words}: the fairness analyzer's score interval)")
            side = "left"
        return to_figure(fig, title="Accuracy against " + ("robustness" if swept.metric == ROBUST else "disparity"),
                         caption=(
            f"Each point is the model mitigated by {swept.method} at the {swept.knob} its label gives, measured on "
            f"the same rows; {how}. The line joins the Pareto front (no other point is better on both); the star "
            f"is the point written, the most accurate whose {bound} is {side} of the dashed limit."))
