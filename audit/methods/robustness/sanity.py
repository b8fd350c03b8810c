"""Checks that an attack result reflects the model, not a broken attack.

Carlini et al. (2019), "On Evaluating Adversarial Robustness", list signs that a
gradient is masked or obfuscated and the robustness it suggests is false: an iterative
attack weaker than a single step, accuracy that does not fall towards 0 as epsilon
grows without bound, and a gradient-free attack that beats the gradient attack. The
first is checked at every epsilon of the sweep (masking often shows only at small ones),
the last at the configured epsilon, where the gate reads (APGD and Square do not run below
it); it counts what APGD (whose DLR loss a saturated softmax does not blind) and Square
together broke beyond PGD. They may add a little to a working PGD (cross-entropy PGD trails
a targeted margin attack by several points where the model is far from robust: APGD-CE left
0.39 and APGD-T 0.32 of a digits CNN at epsilon 0.1), so the check fails only when what they
add exceeds both the tolerance and `SQUARE_SHARE` of what PGD itself took from the clean
accuracy; a masked gradient leaves PGD with next to nothing, so any real gain flags it. The
large-epsilon check runs PGD without a random start, so a random draw over the large ball
cannot pass it for a model whose gradient is zero. A random model
fails a check of its own: Athalye et al. (2018) list randomness as an obfuscated gradient.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SQUARE_SHARE = 0.25


@dataclass(frozen=True)
class Check:
    name: str
    epsilon: float  # nan for checks that hold for the model as a whole
    passed: bool
    detail: str


def sanity_checks(*, grid: np.ndarray, clean: float, fgsm: np.ndarray, pgd: np.ndarray, beyond_pgd: float,
                  at: int, large: float, large_epsilon: float, stochastic: bool, draws: int, tolerance: float,
                  large_max_accuracy: float) -> list[Check]:
    """The checks, from the clean accuracy, robust accuracies at each epsilon of `grid` (`fgsm`, `pgd`), the share of
    examples only APGD or the gradient-free Square attack broke at the configured epsilon `grid[at]`
    (`beyond_pgd`), PGD's accuracy at `large_epsilon` without a random start (`large`) and whether the model is
    random."""
    checks = [Check("model_is_deterministic", float("nan"), not stochastic,
                    f"repeated forward passes of the same input differ: the model is random, so the attacks averaged "
                    f"gradients over {draws} draws and scored each example by the majority of {draws} draws"
                    if stochastic else "repeated forward passes of the same input agree")]
    for e, f, p in zip(grid, fgsm, pgd):
        checks.append(Check("pgd_not_weaker_than_fgsm", float(e), bool(p <= f + tolerance),
                            f"PGD accuracy {p:.3f} vs FGSM {f:.3f}: an iterative attack should be at least as strong "
                            "as its first step"))
    s, p = beyond_pgd, pgd[at]
    allowed = max(tolerance, SQUARE_SHARE * (clean - p))
    checks.append(Check("pgd_not_beaten_by_square", float(grid[at]), bool(s <= allowed),
                        f"APGD and Square broke {s:.3f} of the examples that PGD and FGSM left (at most "
                        f"{allowed:.3f} expected: {tolerance:g}, or {SQUARE_SHARE:g} of the {clean - p:.3f} PGD "
                        "broke): attacks that a misleading or vanishing cross-entropy gradient does not blind "
                        "doing much better means PGD's gradient misleads"))
    checks.append(Check("large_epsilon_breaks_model", float(large_epsilon), bool(large <= large_max_accuracy),
                        f"PGD accuracy {large:.3f} at epsilon {large_epsilon:g} from the clean input, without a "
                        f"random start (expected <= {large_max_accuracy:g}): with a perturbation that large the "
                        "gradient alone should lead to a wrong class for nearly every example"))
    return checks
