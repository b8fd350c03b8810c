"""What robustness judges, computed once by the analyzer: every number its findings state."""

from __future__ import annotations

import math
from dataclasses import dataclass

from audit.methods.robustness.sanity import Check


@dataclass(frozen=True)
class RobustnessSummary:
    """`kept` is the share of the `correct` attacked examples that no attack flipped (NaN where none was
    attacked), read by `metric`. `epsilon` is where the metrics are taken; None for the synonym attack on
    texts, which has no epsilon. `failed_checks` are the attack sanity checks that failed, in table order."""

    metric: str
    correct: int
    kept: float
    epsilon: float | None = None
    norm: str = "linf"
    stochastic: bool = False
    draws: int = 1
    pgd_accuracy: float = math.nan
    robust_accuracy: float = math.nan
    failed_checks: tuple[Check, ...] = ()
