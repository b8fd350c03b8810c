"""Checks that an attack result reflects the model, not a broken attack.

Carlini et al. (2019), "On Evaluating Adversarial Robustness", list signs that a
gradient is masked or obfuscated and the robustness it suggests is false: an iterative
attack weaker than a single step, accuracy that does not fall towards 0 as epsilon
grows without bound, and a gradient-free attack that beats the gradient attack. Each
check compares robust accuracies measured on the same examples.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    detail: str


def sanity_checks(*, fgsm: float, pgd: float, search: float, large: float, large_epsilon: float,
                  tolerance: float, large_max_accuracy: float) -> list[Check]:
    """The three checks, from robust accuracies at the configured epsilon (`fgsm`, `pgd`,
    `search`: the gradient-free attack) and PGD's at `large_epsilon` (`large`)."""
    return [
        Check("pgd_not_weaker_than_fgsm", pgd <= fgsm + tolerance,
              f"PGD accuracy {pgd:.3f} vs FGSM {fgsm:.3f}: an iterative attack should be at least as strong "
              "as its first step"),
        Check("large_epsilon_breaks_model", large <= large_max_accuracy,
              f"PGD accuracy {large:.3f} at epsilon {large_epsilon:g} (expected <= {large_max_accuracy:g}): "
              "with a perturbation that large the attack should fool nearly every example"),
        Check("gradient_attack_beats_search", pgd <= search + tolerance,
              f"PGD accuracy {pgd:.3f} vs gradient-free search {search:.3f}: a gradient-free attack that "
              "is stronger means the gradient misleads"),
    ]
