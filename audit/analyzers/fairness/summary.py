"""The fairness judgement as one typed object, built once from the tally's cells (fairlearn's MetricFrame is
the model): per sensitive feature and intersection, the groups used and left out, and per disparity and judged
class its value, interval, the rates of the groups it compares and the pair that drives it.

The pair is chosen by one rule (`compared_pair`) that never compares a group with itself: groups whose rates
are equal are "all groups equal", fewer than two groups with a rate are "undefined". The analyzer's metrics,
tables and details, its findings, its drivers and its caveat all read this object; nothing rebuilds a pair
from metric names, tables or details.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from audit.methods.fairness.metrics import COMPARES, RATE_NAMES, WORSE_END, rate_counts

COMPARED, EQUAL, UNDEFINED = "compared", "all groups equal", "undefined"


@dataclass(frozen=True)
class GroupRate:
    """One group's rate: successes over trials (e.g. rows predicted positive over rows)."""

    group: str
    rate: float
    successes: float
    trials: float


@dataclass(frozen=True)
class Pair:
    """The worse-off and better-off group of a disparity and the rate that separates them (`state` COMPARED),
    or why there is no pair: EQUAL rates or an UNDEFINED comparison (the groups are then None)."""

    rate: str  # "selection_rate", "tpr", "fpr" or "accuracy"
    state: str
    worse: str | None = None
    better: str | None = None
    worse_rate: float | None = None
    better_rate: float | None = None

    @property
    def words(self) -> str:
        """"Female vs Male", or the state when there is no pair."""
        return f"{self.worse} vs {self.better}" if self.state == COMPARED else self.state


def compared_pair(by_group: pd.DataFrame, metric: str) -> Pair:
    """The two groups a disparity between the rows of a group table compares: the rate that decides it (for
    equalized odds the one with the larger gap or smaller ratio, as fairlearn takes it), its worse-off and
    better-off group (WORSE_END: the low end, or the high end of the false positive rate)."""
    rates, kind = COMPARES[metric]
    high, low = by_group[list(rates)].max(), by_group[list(rates)].min()
    with np.errstate(invalid="ignore", divide="ignore"):
        spread = (high - low) if kind == "difference" else -(low / high)
    rate = rates[int(np.nanargmax(spread.to_numpy()))] if spread.notna().any() else rates[0]
    column = by_group[rate].dropna()
    if len(column) < 2:
        return Pair(rate, UNDEFINED)
    worse, better = (column.idxmin(), column.idxmax()) if WORSE_END[rate] == "low" else (
        column.idxmax(), column.idxmin())
    if column[worse] == column[better]:
        return Pair(rate, EQUAL)
    return Pair(rate, COMPARED, str(worse), str(better), float(column[worse]), float(column[better]))


def group_rates(by_group: pd.DataFrame, rate: str) -> tuple[GroupRate, ...]:
    successes, trials = rate_counts(by_group, rate)
    return tuple(GroupRate(str(g), float(r), float(s), float(t))
                 for g, r, s, t in zip(by_group.index, by_group[rate], successes, trials))


@dataclass(frozen=True)
class Disparity:
    """One disparity of one feature (or the worst over features) for one judged class: its value and interval,
    the rates of the groups it compares (the pair's rate) and the pair."""

    feature: str
    metric: str  # a key of audit.methods.fairness.metrics.DISPARITIES
    cls: str | None  # the class judged positive; None for the multiclass accuracy (all classes)
    value: float
    interval: tuple[float, float]
    pair: Pair
    groups: tuple[GroupRate, ...]

    @property
    def rate_words(self) -> str:
        """"selection rate of '>50K'", "accuracy"."""
        name = RATE_NAMES[self.pair.rate]
        return name if self.cls is None or self.pair.rate == "accuracy" else f"{name} of {self.cls!r}"

    @property
    def driver(self) -> str:
        """What drives it, as a report's key numbers show it: "sex: Female vs Male (selection rate)"."""
        return f"{self.feature}: {self.pair.words} ({self.rate_words})"

    @property
    def direction(self) -> str:
        """The disparity in plain words, as the disparities table and `audit metrics` show it."""
        kind = COMPARES[self.metric][1]
        how = ("largest minus smallest, unsigned: 0 is parity" if kind == "difference"
               else "smallest over largest: 1 is parity")
        if self.pair.state != COMPARED:
            return f"{self.rate_words} by {self.feature}: {self.pair.state}; {kind} = {how}"
        worse_end = "lower" if WORSE_END[self.pair.rate] == "low" else "higher"
        return (f"{self.rate_words} by {self.feature}: {self.pair.worse!r} {self.pair.worse_rate:.3f} is worse off "
                f"({worse_end}) than {self.pair.better!r} {self.pair.better_rate:.3f}; {kind} = {how}")

    @property
    def supported(self) -> bool:
        """Whether its interval is a pair of finite numbers (an undefined disparity has none)."""
        return all(math.isfinite(v) for v in self.interval)


@dataclass(frozen=True)
class Attribute:
    """A sensitive feature or intersection: what its groups are (audit.core.groups.attribute_kind), the groups
    its disparities compare and those left out, with why."""

    name: str
    kind: str
    used: tuple[str, ...]
    excluded: tuple[tuple[str, str], ...]  # (group, why)
    intersection: bool


@dataclass(frozen=True)
class Degenerate:
    """A model that predicts one class for nearly every row."""

    cls: str
    share: float
    rows: int

    @property
    def words(self) -> str:
        return f"the model predicts {self.cls!r} for {self.share:.1%} of rows"


@dataclass(frozen=True)
class FairnessSummary:
    """The fairness judgement of one run, computed once; every view of it reads this."""

    classes: tuple[str, ...]  # the model's classes
    positive_classes: tuple[str, ...]  # the classes judged as "positive", one outcome each
    assumed_positive: str | None  # the positive class taken without being told, where the labels leave it open
    attributes: Mapping[str, Attribute]
    worst: Mapping[str, Disparity]  # metric name ("fairness.sex.<m>", "fairness.<m>") -> its decisive disparity
    per_class: tuple[Disparity, ...]  # multiclass: each feature's disparities per judged class
    base_rates: Mapping[tuple[str, str], tuple[GroupRate, ...]]  # (feature, class) -> share labelled it, per group
    degenerate: Degenerate | None
    preview: str  # what the mitigation preview is; "" when it did not run
    confidence: float

    def disparity(self, feature: str, metric: str) -> Disparity | None:
        return self.worst.get(f"fairness.{feature}.{metric}")
