"""Confidence intervals of the disparities from score intervals of each group's rate.

Every disparity is a worst case over comparisons of two groups' rates: a difference is
max |p_i - p_j| over the pairs of groups (and over the rates it takes: true and false
positive rates for equalized odds; over classes and features for the worst cases), a
ratio is min min(p_i/p_j, p_j/p_i). Each comparison gets an interval from the
literature:

- a difference of two proportions: Newcombe's hybrid score interval with continuity
  correction (Newcombe 1998, Stat Med 17:873, method 11), built from the two groups'
  continuity-corrected Wilson intervals;
- a ratio of two proportions: the MOVER interval of the log ratio (Donner & Zou 2012) from
  the same continuity-corrected Wilson limits (the Katz log interval undercovered for a
  small group against a large one: 0.92 at parity, groups of 30 and 1,000).

The interval of the worst case follows from its comparisons' intervals, with its error
alpha = 1 - confidence split between its two ends. A difference's upper bound is the
largest upper bound of its comparisons at two-sided level 1 - 2*GATE_SHARE*alpha: the
comparison whose true gap is the largest stays below its bound except with probability
GATE_SHARE*alpha, whichever comparison it is. Its lower bound is the largest lower bound at
two-sided level 1 - (1 - GATE_SHARE)*alpha/M over the M comparisons (Bonferroni: every
comparison must hold from below at once, and at parity a comparison errs on both sides).
A ratio mirrors it (its lower bound is the gate's side). The union bound gives coverage of
at least `confidence`, the gate's side (`use = "upper"` on a difference, `"lower"` on a
ratio) errs at most GATE_SHARE*alpha (1.25% at 95%), and the worst case is never tighter
than one of its parts on that side. The estimate always lies inside (each comparison's
interval contains its own estimate), without widening.

Rates are given as counts: `x` successes out of `n` per group, arrays of shape
(..., groups); leading dimensions (simulated samples in the coverage benchmark) broadcast.
A group with n = 0 has rate 0 (sklearn's convention) and the uninformative interval [0, 1].
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.stats import norm

Rate = tuple[np.ndarray, np.ndarray]  # (x, n): successes and trials per group, shape (..., groups)
GATE_SHARE = 0.25  # the share of the interval's error spent on the side a gate reads


def wilson(x, n, z, continuity: bool = True):
    """Wilson score interval of x/n, elementwise: (rate, low, high). With `continuity`, Newcombe's
    continuity-corrected form (1998, method 4); without, the plain one (method 3)."""
    x, n = np.asarray(x, dtype=float), np.asarray(n, dtype=float)
    c = 1.0 if continuity else 0.0
    with np.errstate(invalid="ignore", divide="ignore"):
        p = np.where(n > 0, x / n, 0.0)
        denominator = 2 * (n + z * z)
        spread = z * z - 2 * c - c / n
        low = (2 * n * p + z * z - c - z * np.sqrt(np.maximum(spread + 4 * p * (n * (1 - p) + c), 0))) / denominator
        high = (2 * n * p + z * z + c + z * np.sqrt(np.maximum(spread + 4 * c + 4 * p * (n * (1 - p) - c), 0))
                ) / denominator
    low = np.where((n == 0) | (x == 0), 0.0, np.clip(low, 0.0, 1.0))
    high = np.where((n == 0) | (x == n), 1.0, np.clip(high, 0.0, 1.0))
    return p, low, high


def _pairs(groups: int) -> tuple[np.ndarray, np.ndarray]:
    i, j = np.triu_indices(groups, k=1)
    return i, j


def gap_bounds(rate: Rate, z: float, continuity: bool = True):
    """Interval of |p_i - p_j| for every pair of groups: (low, high), shape (..., pairs). From Newcombe's
    interval (L, U) of p_i - p_j: |d| lies in [0, max(-L, U)] when L <= 0 <= U, else in [min |L|, |U|]."""
    p, low, high = wilson(*rate, z, continuity)
    i, j = _pairs(p.shape[-1])
    d = p[..., i] - p[..., j]
    lower = d - np.sqrt((p[..., i] - low[..., i]) ** 2 + (high[..., j] - p[..., j]) ** 2)
    upper = d + np.sqrt((high[..., i] - p[..., i]) ** 2 + (p[..., j] - low[..., j]) ** 2)
    straddles = (lower <= 0) & (upper >= 0)
    abs_low = np.where(straddles, 0.0, np.minimum(np.abs(lower), np.abs(upper)))
    abs_high = np.maximum(np.abs(lower), np.abs(upper))
    return np.clip(abs_low, 0, 1), np.clip(abs_high, 0, 1)


def ratio_bounds(rate: Rate, z: float):
    """Interval of min(p_i/p_j, p_j/p_i) for every pair of groups: (low, high), shape (..., pairs), from the
    MOVER interval [A, B] of p_i/p_j on the log scale (Donner & Zou 2012, Stat Methods Med Res 21:347) with the
    groups' continuity-corrected Wilson limits; where a rate is 0 (log undefined), the ratio of the Wilson
    limits. A pair where both rates are 0 tells nothing: [0, 1]."""
    p, low, high = wilson(*rate, z)
    i, j = _pairs(p.shape[-1])
    pi, pj, li, lj, ui, uj = p[..., i], p[..., j], low[..., i], low[..., j], high[..., i], high[..., j]
    zero_i, zero_j = pi == 0, pj == 0
    with np.errstate(invalid="ignore", divide="ignore"):
        log_ratio = np.log(pi) - np.log(pj)
        a = np.exp(log_ratio - np.sqrt((np.log(pi) - np.log(li)) ** 2 + (np.log(uj) - np.log(pj)) ** 2))
        b = np.exp(log_ratio + np.sqrt((np.log(ui) - np.log(pi)) ** 2 + (np.log(pj) - np.log(lj)) ** 2))
        a = np.where(zero_i, 0.0, np.where(zero_j, li / uj, a))
        b = np.where(zero_j, np.inf, np.where(zero_i, ui / lj, b))
        lower = np.where(b < 1, a, np.where(a > 1, 1 / b, np.minimum(a, 1 / b)))
        upper = np.where(b < 1, b, np.where(a > 1, 1 / a, 1.0))
    x, n = rate
    empty = (zero_i & zero_j) | (np.asarray(n)[..., i] == 0) | (np.asarray(n)[..., j] == 0)
    return np.where(empty, 0.0, np.clip(lower, 0, 1)), np.where(empty, 1.0, np.clip(upper, 0, 1))


def comparisons(rates: Sequence[Rate]) -> int:
    """The number of pairwise comparisons the worst case over `rates` is taken over."""
    return sum(np.shape(x)[-1] * (np.shape(x)[-1] - 1) // 2 for x, _ in rates)


def _z(alpha: float) -> float:
    return float(norm.ppf(1 - alpha / 2))


def worst_gap_interval(rates: Sequence[Rate], confidence: float):
    """Interval of the largest gap between two groups' rates over every rate in `rates` (each (x, n) over its
    own groups): (low, high), each of the leading shape; NaN when there is no pair to compare."""
    return _worst(rates, confidence, gap_bounds, np.max, gate="high")


def worst_ratio_interval(rates: Sequence[Rate], confidence: float):
    """Interval of the smallest ratio of two groups' rates over every rate in `rates`: (low, high)."""
    return _worst(rates, confidence, ratio_bounds, np.min, gate="low")


def _worst(rates, confidence, bounds, reduce, gate: str):
    rates = [r for r in rates if np.shape(r[0])[-1] >= 2]
    m = comparisons(rates)
    if m == 0:
        return float("nan"), float("nan")
    alpha = 1 - confidence
    gate_side = [bounds(r, _z(2 * GATE_SHARE * alpha)) for r in rates]
    other_side = [bounds(r, _z((1 - GATE_SHARE) * alpha / m)) for r in rates]
    low_from, high_from = (other_side, gate_side) if gate == "high" else (gate_side, other_side)
    low = reduce(np.concatenate([lo for lo, _ in low_from], axis=-1), axis=-1)
    high = reduce(np.concatenate([hi for _, hi in high_from], axis=-1), axis=-1)
    if np.ndim(low) == 0:
        return float(low), float(high)
    return low, high


def mean_rate_interval(x, n, confidence: float) -> tuple[float, float, float]:
    """The mean of independent proportions x/n (balanced accuracy: the mean recall over classes) and its
    MOVER interval (Zou & Donner 2008, Stat Med 27:1693) from each proportion's continuity-corrected Wilson
    interval: mean -+ sqrt(sum of squared distances to the lower (upper) limits) / k. (From plain Wilson
    intervals it undercovered: 0.93 at 95% for recalls 0.95 and 0.99 on 20 rows each.) Proportions with n = 0
    are left out, as balanced accuracy leaves out classes absent from the data."""
    x, n = np.asarray(x, dtype=float), np.asarray(n, dtype=float)
    x, n = x[n > 0], n[n > 0]
    if not len(n):
        return float("nan"), float("nan"), float("nan")
    p, low, high = wilson(x, n, _z(1 - confidence))
    mean = float(p.mean())
    return (mean, max(0.0, mean - float(np.sqrt(np.sum((p - low) ** 2))) / len(p)),
            min(1.0, mean + float(np.sqrt(np.sum((high - p) ** 2))) / len(p)))
