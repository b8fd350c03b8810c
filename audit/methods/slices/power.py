"""The smallest gap a slice could detect, under the multiplicity of the whole search.

The false discovery control is Benjamini-Yekutieli's (valid under any dependence between the tests): with m tests
and R discoveries, a test is a discovery when its p-value is at most R * alpha / (m * c(m)), c(m) = 1 + 1/2 + ...
+ 1/m. A slice that is the search's only discovery must reach the one-discovery threshold alpha / (m * c(m)); the
detectable gap is the gap that reaches it with probability `power`: the slice's rate is base_rate + gap, the rest's
base_rate. The rejection boundary is the one `discover` uses (the continuity-corrected Newcombe interval at that
level, with the rest's rate at base_rate); the chance of crossing it is the normal approximation of the estimated
gap with both rates' sampling variance. With more than one discovery the threshold is larger, so this is
conservative.
"""

from __future__ import annotations

import numpy as np
from scipy.special import ndtr
from scipy.stats import norm

from audit.methods.slices.gaps import near_end

BISECTIONS = 32  # halvings of a rate or a gap in [0, 1]: to < 3e-10


def harmonic(m: int) -> float:
    """c(m) = 1 + 1/2 + ... + 1/m: Benjamini-Yekutieli's price of arbitrary dependence (about ln m + 0.58)."""
    return float(np.sum(1.0 / np.arange(1, max(int(m), 1) + 1)))


def by_threshold(tests: int, alpha: float, discoveries: int = 1) -> float:
    """The Benjamini-Yekutieli p-value threshold of the `discoveries`-th smallest of `tests` p-values."""
    return discoveries * alpha / (max(tests, 1) * harmonic(tests))


def detectable_gap(rows, total_rows, base_rate, *, tests: int, alpha: float, power: float = 0.8):
    """The smallest rise of a rate over `base_rate` that a slice of `rows` rows (the rest: total_rows - rows)
    detects with probability `power` as the search's one discovery among `tests` (see the module's note). NaN
    where no gap can reach it. Arrays broadcast; scalars give a float."""
    n1, total, p = np.broadcast_arrays(*(np.asarray(a, dtype=float) for a in (rows, total_rows, base_rate)))
    n2 = np.maximum(total - n1, 0)
    z = float(norm.isf(by_threshold(tests, alpha) / 2))

    def rejects(rate):  # rate >= p: the slice's lower end and the rest's upper end face 0
        return near_end(rate * n1, n1, p * n2, n2, z) > 0

    low, high = p.copy(), np.ones(p.shape)
    for _ in range(BISECTIONS):
        middle = (low + high) / 2
        hit = rejects(middle)
        low, high = np.where(hit, low, middle), np.where(hit, middle, high)
    boundary = high - p  # the estimated gap the test needs

    def chance(gap):
        rate = p + gap
        with np.errstate(invalid="ignore", divide="ignore"):
            spread = np.sqrt(np.maximum(rate * (1 - rate), 0) / n1 + p * (1 - p) / n2)
            return ndtr((gap - boundary) / spread)

    low, high = boundary.copy(), 1 - p
    for _ in range(BISECTIONS):
        middle = (low + high) / 2
        enough = chance(middle) >= power
        low, high = np.where(enough, low, middle), np.where(enough, middle, high)
    gap = np.where(rejects(np.ones(p.shape)) & (chance(1 - p) >= power) & (n1 > 0) & (n2 > 0), high, np.nan)
    return float(gap) if gap.ndim == 0 else gap


def detectable_mean_gap(rows, total_rows, spread, *, tests: int, alpha: float, power: float = 0.8):
    """The same for a difference of means (the calibration gap) whose rows have standard deviation `spread`."""
    n1, total, spread = np.broadcast_arrays(*(np.asarray(a, dtype=float) for a in (rows, total_rows, spread)))
    z = norm.isf(by_threshold(tests, alpha) / 2) + norm.isf(1 - power)
    with np.errstate(invalid="ignore", divide="ignore"):
        gap = np.where((n1 > 0) & (total > n1), z * spread * np.sqrt(1 / n1 + 1 / (total - n1)), np.nan)
    return float(gap) if gap.ndim == 0 else gap
