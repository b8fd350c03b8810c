"""A slice's rate against its complement's: the gap, its interval and the p-value that inverts the interval.

- A proportion (error, false positive, false negative and selection rates): the gap of two independent
  proportions (the slice's rows and the rest's are disjoint) with the hybrid (MOVER) interval of Newcombe (1998,
  method 10's construction) built from each group's limits: exact Clopper-Pearson limits, or the continuity-corrected
  Wilson limits of `audit.methods.fairness.intervals.wilson` (the fairness intervals' own) where both of the group's
  counts are at least EXACT_COUNT (there they agree to within 3% of the half-width at z = 5.5, at a tenth of the
  cost). Slice discovery tests at levels near 1e-6: there, with Wilson limits, a slice of 100 to 300 rows at a base
  rate of 2% to 5% is called 10 to 50 times more often than the level under the null (computed exactly from the
  binomial); with the exact limits never more (simulated in tests/test_slice_statistics.py).
  Its p-value is the two-sided level at which that interval just reaches 0 (a root in z, found by bisection),
  so a test rejects at level a exactly when the interval at confidence 1 - a excludes 0.
- A mean (the calibration gap: the mean of confidence - correct): the z interval of the difference of two means,
  the slice's variance taken as the larger of its own and the whole data's (the residual is skewed: a small slice
  with few errors has a small variance, and its own variance alone made a null slice of 128 rows a discovery at
  p = 1e-7), and the p-value of the same statistic, which agree in the same way.
"""

from __future__ import annotations

import numpy as np
from scipy.special import betaincinv
from scipy.stats import norm

from audit.methods.fairness.intervals import wilson

Z_MAX = 37.0  # 2 * norm.sf(37) is ~6e-300: a smaller p-value is 0 here
BISECTIONS = 40  # halvings of [0, Z_MAX]: z to within 4e-11
EXACT_COUNT = 1000


def limits(x, n, z):
    """(rate, low, high) of x/n at two-sided normal quantile z: Clopper-Pearson, or continuity-corrected Wilson
    where x and n - x are both at least EXACT_COUNT. A group with n = 0 has rate 0 and limits [0, 1]."""
    x, n, z = np.broadcast_arrays(*(np.asarray(a, dtype=float) for a in (x, n, z)))
    rate, low, high = (np.array(a, dtype=float) for a in np.broadcast_arrays(*wilson(x, n, z)))
    exact = (np.minimum(x, n - x) < EXACT_COUNT) & (n > 0)
    if exact.any():
        xe, ne, tail = x[exact], n[exact], norm.sf(z[exact])
        with np.errstate(invalid="ignore", divide="ignore"):
            low[exact] = np.where(xe > 0, betaincinv(np.maximum(xe, 1), ne - xe + 1, tail), 0.0)
            high[exact] = np.where(xe < ne, betaincinv(xe + 1, np.maximum(ne - xe, 1), 1 - tail), 1.0)
    return rate, np.nan_to_num(low, nan=0.0), np.nan_to_num(high, nan=1.0)


def proportion_gap(x1, n1, x2, n2, z):
    """(gap, lower, upper) of x1/n1 - x2/n2 at two-sided normal quantile z (arrays broadcast)."""
    p1, low1, high1 = limits(x1, n1, z)
    p2, low2, high2 = limits(x2, n2, z)
    gap = p1 - p2
    return gap, gap - np.hypot(p1 - low1, high2 - p2), gap + np.hypot(high1 - p1, p2 - low2)


def proportion_p_value(x1, n1, x2, n2) -> np.ndarray:
    """Two-sided p-value of x1/n1 = x2/n2: 2 * sf(z*) at the z* where the interval's near end reaches 0 (z* from
    below, so the p-value errs, by < 1e-9 relative, on the large side)."""
    x1, n1, x2, n2 = np.broadcast_arrays(*(np.asarray(a, dtype=float) for a in (x1, n1, x2, n2)))

    def near_end(z):
        gap, lower, upper = proportion_gap(x1, n1, x2, n2, z)
        return np.where(gap >= 0, lower, -upper)

    low, high = np.zeros(x1.shape), np.full(x1.shape, Z_MAX)
    found = near_end(low) > 0  # else the interval reaches 0 at any level: p = 1
    for _ in range(BISECTIONS):
        middle = (low + high) / 2
        excludes = near_end(middle) > 0
        low, high = np.where(excludes, middle, low), np.where(excludes, high, middle)
    return np.where(found, np.minimum(2 * norm.sf(low), 1.0), 1.0)


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
        p_value = np.where(spread > 0, 2 * norm.sf(np.abs(gap) / spread), np.where(gap == 0, 1.0, 0.0))
    return gap, gap - z * spread, gap + z * spread, p_value
