"""Slice discovery: every slice of at least `min_rows` rows, on every metric that applies, tested against its
complement, with the false discovery rate controlled across all of those tests at once.

- Tests: each (slice, metric) is a two-sided test of the slice's rate against the rest's (`gaps`). The count m of
  tests is every (slice, metric) whose slice, and whose metric's rows in the slice and in the rest (the negatives
  for a false positive rate), number at least `min_rows`; every one of them is computed.
- Multiplicity: Benjamini-Yekutieli step-up at level `alpha` over the m tests, valid under any dependence (slices
  overlap and nest). R discoveries make the threshold R * alpha / (m * c(m)).
- Intervals: every tested gap's interval is at confidence 1 - max(R, 1) * alpha / (m * c(m)), the false coverage
  rate adjustment (Benjamini & Yekutieli 2005, JASA 100:71) for the R selected, so a test is a discovery exactly
  when its interval excludes 0.
- Size rule (SliceLine's, Sagadeeva & Boehm 2021): a slice needs `min_rows` rows, so a conjunction of a slice
  below the rule is never a candidate. SliceLine's second rule, pruning a child whose parents' bound (its most
  extreme possible counts) cannot beat the current threshold, saves nothing here: the lattice already holds every
  child's exact counts, and a bound costs what a test does (on simulated data it pruned none of 1,715 tests).
- Shown: a discovery whose gap points the way the metric is worse (error, false positive, false negative rate: up;
  selection rate, calibration gap: either way) and, for a conjunction, whose rate also differs that way from the
  rest of each parent (the parent's rows outside it) beyond the same interval: a child is shown only if it is worse
  than each parent, not only carried by one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import norm

from audit._util.errors import AuditInputError
from audit.methods.slices.gaps import mean_gap, proportion_gap, proportion_p_value
from audit.methods.slices.lattice import RESOLUTION_BITS, SliceLattice
from audit.methods.slices.power import by_threshold, detectable_gap, detectable_mean_gap

METRICS = ("error_rate", "false_positive_rate", "false_negative_rate", "selection_rate", "calibration_gap")
BINARY_METRICS = frozenset({"false_positive_rate", "false_negative_rate", "selection_rate"})
WORSE = {"error_rate": 1, "false_positive_rate": 1, "false_negative_rate": 1, "selection_rate": 0,
         "calibration_gap": 0}  # the sign of a worse gap; 0: either
DEFAULT_MIN_ROWS = 100
COLUMNS = ("slice", "depth", "metric", "rows", "count", "rate", "rest_rate", "gap", "lower", "upper", "p_value",
           "discovered", "shown", "detectable")


@dataclass(frozen=True)
class Discovery:
    """What the search found and how hard it looked.

    `table`: one row per test (COLUMNS): `slice` a tuple of (feature, code) pairs; `rows` the slice's rows, `count`
    its rows the metric is a rate of (its negatives for a false positive rate); `rate`, `rest_rate` (the
    complement's), `gap` = rate - rest_rate and its FCR-adjusted interval [`lower`, `upper`] at `confidence`,
    `p_value`, `discovered` (Benjamini-Yekutieli), `shown` (see the module's note) and `detectable`: the smallest
    gap that slice could detect at 80% power (one-feature slices and discoveries; NaN elsewhere). `slices`: the
    slices of at least `min_rows` rows; `tests`: the m of the false discovery control; `detectable_gap`: the
    smallest error-rate gap a slice of `min_rows` rows detects at 80% power, so "no finding" reads "no gap larger
    than detectable_gap in any slice of at least min_rows rows"."""

    table: pd.DataFrame
    rows: int
    slices: int
    tests: int
    alpha: float
    min_rows: int
    threshold: float
    confidence: float
    base_error_rate: float
    detectable_gap: float

    @property
    def discoveries(self) -> int:
        return int(self.table["discovered"].sum())

    @property
    def shown(self) -> pd.DataFrame:
        """The shown slices, the farthest from no gap first (by the near end of the interval)."""
        shown = self.table[self.table["shown"].to_numpy(dtype=bool)]
        margin = np.minimum(shown["lower"].abs(), shown["upper"].abs())
        return shown.iloc[np.argsort(-margin.to_numpy(), kind="stable")]


def _metric_counts(cells: np.ndarray, metric: str, binary: bool) -> tuple[np.ndarray, ...]:
    """(successes, trials) of a rate, or (sum, sum of squares, rows) of the calibration residual, from lattice
    cells (last axis: the outcome kinds, then the two residual sums)."""
    kinds = 4 if binary else 2
    rows = cells[..., :kinds].sum(axis=-1).astype(float)
    if metric == "calibration_gap":
        scale = float(2 ** RESOLUTION_BITS)
        return cells[..., kinds] / scale, cells[..., kinds + 1] / scale, rows
    if not binary:
        return cells[..., 1].astype(float), rows
    tn, fp, fn, tp = (cells[..., k].astype(float) for k in range(4))
    return {"error_rate": (fp + fn, rows), "false_positive_rate": (fp, tn + fp),
            "false_negative_rate": (fn, fn + tp), "selection_rate": (fp + tp, rows)}[metric]


@dataclass(frozen=True)
class _Tests:
    """The tests of one metric: per test its feature set's index, its flat cell, the slice's rows and the counts
    (`_metric_counts`) of the slice and of the rest."""

    metric: str
    feature_set: np.ndarray
    cell: np.ndarray
    rows: np.ndarray
    inside: tuple[np.ndarray, ...]
    rest: tuple[np.ndarray, ...]


def _p_values(candidates: list[_Tests]) -> list[np.ndarray]:
    """Every test's p-value; the rates' tests in one call (its cost is mostly per call on small data)."""
    rates = [t for t in candidates if t.metric != "calibration_gap"]
    joined = proportion_p_value(*(np.concatenate([t.inside[k] for t in rates] + [np.zeros(0)]) for k in range(2)),
                                *(np.concatenate([t.rest[k] for t in rates] + [np.zeros(0)]) for k in range(2)))
    parts = iter(np.split(joined, np.cumsum([len(t.cell) for t in rates])[:-1]) if rates else [])
    return [mean_gap(*t.inside, *t.rest, 0.0)[3] if t.metric == "calibration_gap" else next(parts)
            for t in candidates]


def discover(lattice: SliceLattice, *, alpha: float = 0.05, min_rows: int = DEFAULT_MIN_ROWS,
             metrics: tuple[str, ...] = METRICS, power: float = 0.8) -> Discovery:
    """Test every slice of `lattice` with at least `min_rows` rows on each of `metrics` that applies (the rates of
    a binary task only where the lattice's outcomes are binary) against its complement; see the module's note."""
    unknown = set(metrics) - set(METRICS)
    if unknown:
        raise AuditInputError(f"unknown slice metric(s) {sorted(unknown)}; choose from {', '.join(METRICS)}")
    if not 0 < alpha < 1 or min_rows < 1:
        raise AuditInputError("slice discovery needs 0 < alpha < 1 and min_rows >= 1")
    if lattice.total is None:
        raise AuditInputError("slice discovery needs at least one row")
    binary = bool(lattice.binary)
    metrics = tuple(m for m in metrics if binary or m not in BINARY_METRICS)
    sized = _sized(lattice, min_rows)
    candidates = [_candidates(lattice, metric, sized, min_rows) for metric in metrics]
    p_values = _p_values(candidates)
    m = sum(len(p) for p in p_values)
    ranked = np.sort(np.concatenate(p_values)) if m else np.zeros(0)
    below = np.flatnonzero(ranked <= np.arange(1, m + 1) * by_threshold(m, alpha))
    threshold = by_threshold(m, alpha, int(below[-1]) + 1 if len(below) else 1)
    frames = [_frame(lattice, tests, p, threshold) for tests, p in zip(candidates, p_values)]
    frames = [f for f in frames if len(f)]
    table = (pd.concat(frames, ignore_index=True) if frames
             else pd.DataFrame({c: pd.Series(dtype=object) for c in COLUMNS}))
    errors, rows = _metric_counts(lattice.total, "error_rate", binary)
    base_error = float(errors / rows)
    headline = _detectable(lattice, table, m, alpha, power, (min_rows, base_error))
    return Discovery(table=table, rows=lattice.rows, slices=int(sum(s.sum() for s in sized)), tests=m, alpha=alpha,
                     min_rows=min_rows, threshold=threshold, confidence=1 - threshold, base_error_rate=base_error,
                     detectable_gap=headline if m else float("nan"))


def _detectable(lattice: SliceLattice, table: pd.DataFrame, m: int, alpha: float, power: float, headline) -> float:
    """Fill `table`'s detectable gaps (one-feature slices and discoveries) and return that of a slice of headline[0]
    rows at the error rate headline[1]; the rates' in one call."""
    binary = bool(lattice.binary)
    table["detectable"] = np.nan
    rated = ((table["depth"] == 1) | table["discovered"]).to_numpy(dtype=bool)
    totals = {metric: _metric_counts(lattice.total, metric, binary) for metric in set(table["metric"])}
    calibration = (table["metric"] == "calibration_gap").to_numpy()
    rows = table.loc[rated & ~calibration]
    trials = np.array([totals[metric][1] for metric in rows["metric"]] + [lattice.rows], dtype=float)
    successes = np.array([totals[metric][0] for metric in rows["metric"]] + [headline[1] * lattice.rows])
    gaps = detectable_gap(np.append(rows["count"].to_numpy(dtype=float), headline[0]), trials, successes / trials,
                          tests=m, alpha=alpha, power=power)
    table.loc[rated & ~calibration, "detectable"] = gaps[:-1]
    if (rated & calibration).any():
        total, squares, count = totals["calibration_gap"]
        spread = np.sqrt(max(squares / count - (total / count) ** 2, 0.0))
        table.loc[rated & calibration, "detectable"] = detectable_mean_gap(
            table.loc[rated & calibration, "count"].to_numpy(dtype=float), count, spread, tests=m, alpha=alpha,
            power=power)
    return float(gaps[-1])


def _sized(lattice: SliceLattice, min_rows: int) -> list[np.ndarray]:
    """Per feature set, the flat cells whose slice and complement both have `min_rows` rows."""
    sized = []
    for features in lattice.feature_sets:
        rows = lattice.table(features)[..., :lattice.kinds].sum(axis=-1).ravel()
        sized.append((rows >= min_rows) & (lattice.rows - rows >= min_rows))
    return sized


def _candidates(lattice: SliceLattice, metric: str, sized: list[np.ndarray], min_rows: int) -> _Tests:
    """The tests of `metric`: sized slices whose metric has `min_rows` rows inside and outside the slice."""
    binary = bool(lattice.binary)
    total = _metric_counts(lattice.total, metric, binary)
    parts = []
    for index, (features, keep) in enumerate(zip(lattice.feature_sets, sized)):
        table = lattice.table(features)
        inside = _metric_counts(table.reshape(-1, table.shape[-1]), metric, binary)
        cell = np.flatnonzero(keep & (inside[-1] >= min_rows) & (total[-1] - inside[-1] >= min_rows))
        rows = table[..., :lattice.kinds].sum(axis=-1).ravel()[cell]
        parts.append((np.full(len(cell), index), cell, rows, [a[cell] for a in inside]))
    inside = tuple(np.concatenate([p[3][k] for p in parts]) for k in range(len(total)))
    return _Tests(metric, np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]),
                  np.concatenate([p[2] for p in parts]), inside, tuple(t - a for t, a in zip(total, inside)))


def _gap(metric: str, inside, rest, z: float):
    """(rate, rest_rate, gap, lower, upper) of the slice against the rest at normal quantile z."""
    if metric == "calibration_gap":
        gap, lower, upper, _ = mean_gap(*inside, *rest, z)
        with np.errstate(invalid="ignore", divide="ignore"):
            return inside[0] / inside[2], rest[0] / rest[2], gap, lower, upper
    gap, lower, upper = proportion_gap(*inside, *rest, z)
    with np.errstate(invalid="ignore", divide="ignore"):  # a parent with no rows outside its child: NaN
        return inside[0] / inside[1], rest[0] / rest[1], gap, lower, upper


def _codes(lattice: SliceLattice, tests: _Tests) -> list[tuple[tuple[int, int], ...]]:
    slices = []
    for index, cell in zip(tests.feature_set, tests.cell):
        features = lattice.feature_sets[index]
        codes = np.unravel_index(cell, tuple(lattice.cardinalities[f] for f in features))
        slices.append(tuple((f, int(c)) for f, c in zip(features, codes)))
    return slices


def _worse_than_parents(lattice: SliceLattice, tests: _Tests, slices, chosen: np.ndarray, sign: np.ndarray,
                        z: float) -> np.ndarray:
    """Whether each chosen child differs from the rest of every parent (the parent's rows outside it) in the
    direction `sign` beyond its interval at z; a child with no parent rows outside it differs from none."""
    inside = tuple(a[chosen] for a in tests.inside)
    beyond = np.ones(len(chosen), dtype=bool)
    depth = len(slices[chosen[0]])
    for drop in range(depth):
        parents = [lattice.table(tuple(f for k, (f, _) in enumerate(slices[i]) if k != drop))[
            tuple(c for k, (_, c) in enumerate(slices[i]) if k != drop)] for i in chosen]
        outside = tuple(p - c for p, c in zip(_metric_counts(np.array(parents), tests.metric, bool(lattice.binary)),
                                                inside))
        _, _, _, lower, upper = _gap(tests.metric, inside, outside, z)
        beyond &= (outside[-1] > 0) & np.where(sign > 0, lower > 0, upper < 0)
    return beyond


def _frame(lattice: SliceLattice, tests: _Tests, p_value: np.ndarray, threshold: float) -> pd.DataFrame:
    z = float(norm.isf(threshold / 2))
    rate, rest_rate, gap, lower, upper = _gap(tests.metric, tests.inside, tests.rest, z)
    discovered = p_value <= threshold
    worse = WORSE[tests.metric]
    sign = np.sign(gap) if worse == 0 else np.full(len(gap), worse)
    shown = discovered & (np.sign(gap) == sign)
    slices = _codes(lattice, tests)
    depth = np.array([len(s) for s in slices], dtype=np.int64)
    for level in range(2, lattice.depth + 1):
        chosen = np.flatnonzero(shown & (depth == level))
        if len(chosen):
            shown[chosen] = _worse_than_parents(lattice, tests, slices, chosen, sign[chosen], z)
    return pd.DataFrame({
        "slice": slices, "depth": depth, "metric": tests.metric, "rows": tests.rows.astype(np.int64),
        "count": tests.inside[-1].astype(np.int64), "rate": rate, "rest_rate": rest_rate, "gap": gap,
        "lower": lower, "upper": upper, "p_value": p_value, "discovered": discovered, "shown": shown},
        columns=list(COLUMNS))
