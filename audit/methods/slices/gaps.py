"""A slice's rate against its complement's: the gap, its interval and the p-value that inverts the interval.

- A proportion (error, false positive, false negative and selection rates): the gap of two independent
  proportions (the slice's rows and the rest's are disjoint) with Newcombe's hybrid (MOVER) construction (1998,
  methods 10 and 11) from each group's limits: exact Clopper-Pearson limits, or the continuity-corrected Wilson
  limits of `audit.methods.fairness.intervals.wilson` (the fairness intervals' own) where both of the group's
  counts are at least EXACT_COUNT (there they agree to within 3% of the half-width at z = 5.5, at a tenth of the
  cost). Slice discovery tests at levels near 1e-6: there, with Wilson limits throughout, a null slice of 100 to
  300 rows at a base rate of 2% to 5% is a discovery 10 to 50 times more often than the level (summed exactly over
  the binomial); with these limits never more often, over slices of 100 to 8,000 rows at base rates of 2% to 33%
  (tests/test_slice_statistics.py checks the worst of those settings).
  Its p-value is the two-sided level at which that interval just reaches 0 (a root in z, found by bisection),
  so a test rejects at level a exactly when the interval at confidence 1 - a excludes 0.
- A mean (the calibration gap: the mean of confidence - correct): the z interval of the difference of two means,
  the slice's variance taken as the larger of its own and the whole data's (the residual is skewed: a small slice
  with few errors has a small variance, and its own variance alone made a null slice of 128 rows a discovery at
  p = 1e-7), and the p-value of the same statistic, which agree in the same way.
"""

from __future__ import annotations

import numpy as np
from scipy.special import betaincinv, ndtr

from audit.methods.fairness.intervals import wilson

Z_MAX = 37.0  # 2 * norm.sf(37) is ~6e-300: a smaller p-value is 0 here
BISECTIONS = 26  # halvings of the bracket of z (width 2, or Z_MAX where the score start misleads)
EXACT_COUNT = 1000


def limit(x, n, z, upper):
    """One end of the interval of x/n at two-sided normal quantile z, elementwise: the upper end where `upper`,
    else the lower; Clopper-Pearson, or continuity-corrected Wilson where x and n - x are both at least
    EXACT_COUNT. A group with n = 0 has limits [0, 1]."""
    x, n, z, upper = np.broadcast_arrays(*(np.asarray(a, dtype=float) for a in (x, n, z)), np.asarray(upper))
    _, low, high = wilson(x, n, z)
    end = np.array(np.where(upper, high, low), dtype=float)
    exact = (np.minimum(x, n - x) < EXACT_COUNT) & (n > 0)
    tail = ndtr(-z)  # norm.sf(z), without scipy.stats' per-call cost (this runs ~70 times a search)
    lows, highs = exact & ~upper, exact & upper
    xs, ns = x[lows], n[lows]
    end[lows] = np.where(xs > 0, betaincinv(np.maximum(xs, 1), ns - xs + 1, tail[lows]), 0.0)
    xs, ns = x[highs], n[highs]
    end[highs] = np.where(xs < ns, betaincinv(xs + 1, np.maximum(ns - xs, 1), 1 - tail[highs]), 1.0)
    return end


def limits(x, n, z):
    """(rate, low, high) of x/n at two-sided normal quantile z (see `limit`)."""
    x, n = np.asarray(x, dtype=float), np.asarray(n, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = np.where(n > 0, x / n, 0.0)
    return rate, limit(x, n, z, False), limit(x, n, z, True)


def proportion_gap(x1, n1, x2, n2, z):
    """(gap, lower, upper) of x1/n1 - x2/n2 at two-sided normal quantile z (arrays broadcast)."""
    p1, low1, high1 = limits(x1, n1, z)
    p2, low2, high2 = limits(x2, n2, z)
    gap = p1 - p2
    return gap, gap - np.hypot(p1 - low1, high2 - p2), gap + np.hypot(high1 - p1, p2 - low2)


def near_end(x1, n1, x2, n2, z, score: bool = False):
    """The distance from 0 of the interval's end nearer to it (> 0: the interval excludes 0); with `score`, from
    the Wilson limits alone (a cheap first guess of the root)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        p1, p2 = np.where(n1 > 0, x1 / n1, 0.0), np.where(n2 > 0, x2 / n2, 0.0)
    up = p1 >= p2  # the slice's lower end and the rest's upper end face 0
    if score:
        _, low1, high1 = wilson(x1, n1, z)
        _, low2, high2 = wilson(x2, n2, z)
        end1, end2 = np.where(up, low1, high1), np.where(up, high2, low2)
    else:
        end1, end2 = limit(x1, n1, z, ~up), limit(x2, n2, z, up)
    return np.abs(p1 - p2) - np.hypot(p1 - end1, end2 - p2)


def _bisect(distance, low, high, steps):
    for _ in range(steps):
        middle = (low + high) / 2
        excludes = distance(middle) > 0
        low, high = np.where(excludes, middle, low), np.where(excludes, high, middle)
    return low, high


def proportion_p_value(x1, n1, x2, n2) -> np.ndarray:
    """Two-sided p-value of x1/n1 = x2/n2: 2 * sf(z*) at the z* where the interval's near end reaches 0, found by
    bisection from a bracket around the Wilson limits' root (z* from below, to within 6e-7: the p-value errs on
    the large side)."""
    x1, n1, x2, n2 = np.broadcast_arrays(*(np.asarray(a, dtype=float) for a in (x1, n1, x2, n2)))

    def exact(z):
        return near_end(x1, n1, x2, n2, z)

    zero, top = np.zeros(x1.shape), np.full(x1.shape, Z_MAX)
    found = exact(zero) > 0  # else the interval reaches 0 at any level: p = 1
    guess, _ = _bisect(lambda z: near_end(x1, n1, x2, n2, z, score=True), zero, top, 40)
    low, high = np.maximum(guess - 1, 0), np.minimum(guess + 1, Z_MAX)
    fits = (exact(low) > 0) & (exact(high) <= 0)
    low, high = _bisect(exact, np.where(fits, low, zero), np.where(fits, high, top), BISECTIONS)
    return np.where(found, np.minimum(2 * ndtr(-low), 1.0), 1.0)


def mean_gap(sum1, squares1, n1, sum2, squares2, n2, z):
    """(gap, lower, upper, p_value) of the difference of two means from their sums, sums of squares and counts;
    the first group's variance is at least the pooled one (see the module's note)."""
    sum1, squares1, n1, sum2, squares2, n2 = (np.asarray(a, dtype=float)
                                              for a in (sum1, squares1, n1, sum2, squares2, n2))
    with np.errstate(invalid="ignore", divide="ignore"):
        mean1, mean2 = sum1 / n1, sum2 / n2
        var1 = np.maximum(squares1 - n1 * mean1 ** 2, 0) / np.maximum(n1 - 1, 1)
        var2 = np.maximum(squares2 - n2 * mean2 ** 2, 0) / np.maximum(n2 - 1, 1)
        total = n1 + n2
        pooled = np.maximum(squares1 + squares2 - (sum1 + sum2) ** 2 / total, 0) / np.maximum(total - 1, 1)
        spread = np.sqrt(np.maximum(var1, pooled) / n1 + var2 / n2)
        gap = mean1 - mean2
        p_value = np.where(spread > 0, 2 * ndtr(-np.abs(gap) / spread), np.where(gap == 0, 1.0, 0.0))
    return gap, gap - z * spread, gap + z * spread, p_value
