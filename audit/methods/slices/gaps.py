"""A slice's rate against its complement's: the gap, its interval and the p-value that inverts the interval.

- A proportion (error, false positive, false negative and selection rates): the gap of two independent
  proportions (the slice's rows and the rest's are disjoint) with Newcombe's hybrid score interval with continuity
  correction (Newcombe 1998, method 11), built from `audit.methods.fairness.intervals.wilson` as the fairness
  intervals are. Its p-value is the two-sided level at which that interval just touches 0 (found by bisection on
  z), so a test rejects at level a exactly when the interval at confidence 1 - a excludes 0.
- A mean (the calibration gap: the mean of confidence - correct): Welch's z interval and its two-sided p-value,
  which agree in the same way.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import norm

from audit.methods.fairness.intervals import wilson

Z_MAX = 40.0  # a p-value below 2 * norm.sf(40) (~1e-350) is 0 in float64
BISECTIONS = 44  # halvings of [0, Z_MAX]: z to 2e-12


def proportion_gap(x1, n1, x2, n2, z):
    """(gap, lower, upper) of x1/n1 - x2/n2 at two-sided normal quantile z (arrays broadcast)."""
    p1, low1, high1 = wilson(x1, n1, z)
    p2, low2, high2 = wilson(x2, n2, z)
    gap = p1 - p2
    return gap, gap - np.hypot(p1 - low1, high2 - p2), gap + np.hypot(high1 - p1, p2 - low2)


def proportion_p_value(x1, n1, x2, n2) -> np.ndarray:
    """Two-sided p-value of x1/n1 = x2/n2: 2 * sf(z*) at the z* where the interval's near end reaches 0."""
    x1, n1, x2, n2 = np.broadcast_arrays(*(np.asarray(a, dtype=float) for a in (x1, n1, x2, n2)))

    def near_end(z):
        gap, lower, upper = proportion_gap(x1, n1, x2, n2, z)
        return np.where(gap >= 0, lower, -upper)

    low, high = np.zeros(x1.shape), np.full(x1.shape, Z_MAX)
    for _ in range(BISECTIONS):
        middle = (low + high) / 2
        excludes = near_end(middle) > 0
        low, high = np.where(excludes, middle, low), np.where(excludes, high, middle)
    return np.where(near_end(np.zeros(x1.shape)) > 0, 2 * norm.sf(low), 1.0)


def mean_gap(sum1, squares1, n1, sum2, squares2, n2, z):
    """(gap, lower, upper, p_value) of the difference of two means from their sums, sums of squares and counts."""
    sum1, squares1, n1, sum2, squares2, n2 = (np.asarray(a, dtype=float)
                                              for a in (sum1, squares1, n1, sum2, squares2, n2))
    with np.errstate(invalid="ignore", divide="ignore"):
        mean1, mean2 = sum1 / n1, sum2 / n2
        var1 = np.maximum(squares1 - n1 * mean1 ** 2, 0) / np.maximum(n1 - 1, 1)
        var2 = np.maximum(squares2 - n2 * mean2 ** 2, 0) / np.maximum(n2 - 1, 1)
        spread = np.sqrt(var1 / n1 + var2 / n2)
        gap = mean1 - mean2
        p_value = np.where(spread > 0, 2 * norm.sf(np.abs(gap) / spread), np.where(gap == 0, 1.0, 0.0))
    return gap, gap - z * spread, gap + z * spread, p_value
