"""The attack sweep: FGSM and PGD over the epsilons of the grid, smallest first; from the configured epsilon
(where the gateable robust accuracy is taken, as AutoAttack reports it) on, APGD-CE, APGD-T and Square, each on
what the attacks before it left, as AutoAttack runs them.

An adversarial within epsilon is one within every larger epsilon of the same norm ball, so an example an attack
broke at a smaller epsilon counts as broken by that attack at every larger one, without attacking it again.
FGSM and PGD run on the examples they have not yet broken (their curves stay what each attack alone finds).
The expensive ensemble runs from the configured epsilon on, on what no attack broke at that or a smaller
epsilon: below it a curve point is what FGSM and PGD found. Running the ensemble at the small epsilons cost
most of the work on a ResNet whose examples survive them, and the curve there needs only the gradient attacks;
at the larger ones it runs on the few that survive the configured epsilon, where PGD alone would leave the
curve several points kinder than APGD-T (0.41 against 0.32 on a small CNN at twice the epsilon). The check of
PGD's gradient against the ensemble is made where the gate reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from audit.methods.robustness.apgd import APGD, apgd
from audit.methods.robustness.attacks import PGD, fgsm, pgd
from audit.methods.robustness.domain import Domain
from audit.methods.robustness.square import square_attack
from audit.methods.robustness.stochastic import voted_correct

if TYPE_CHECKING:
    from audit.analyzers.robustness.analyzer import Robustness

BY_APGD, BY_SQUARE = 1, 2  # which attack first broke an example that FGSM and PGD had not


@dataclass(frozen=True)
class Sweep:
    """Per example (rows) and grid epsilon (columns): not broken by FGSM at that or a smaller epsilon,
    not broken by PGD, broken by Square or by APGD (from the configured epsilon on, so never in an earlier
    column) while FGSM and PGD still fail, and broken by no attack run at that or a smaller epsilon;
    PGD's first adversarial of each example (at the smallest epsilon where PGD broke it; the input itself
    where PGD never did)."""

    fgsm: np.ndarray
    pgd: np.ndarray
    square_only: np.ndarray
    apgd_only: np.ndarray
    robust: np.ndarray
    pgd_adv: torch.Tensor


def attack_sweep(model, x, y, correct, grid, domain: Domain, attack: PGD, options: Robustness,
                 stochastic: bool, seed: int, *, at: int) -> Sweep:
    """The sweep over `grid` (ascending), with the ensemble from `grid[at]`, the configured epsilon, on."""
    draws = attack.draws
    fgsm_left, pgd_left, left = correct.copy(), correct.copy(), correct.copy()  # not yet broken by each / any
    beyond = np.zeros(len(y), dtype=np.int8)
    pgd_adv = x.clone()
    columns = []
    for k, e in enumerate(grid):
        rows = np.flatnonzero(fgsm_left)
        if len(rows):
            found = fgsm(model, x[rows], y[rows], e, domain, norm=attack.norm, draws=draws)
            fgsm_left[rows] = voted_correct(model, found, y[rows], draws)
        rows = np.flatnonzero(pgd_left)
        if len(rows):
            found = pgd(model, x[rows], y[rows], e, domain, config=attack, seed=seed + k)
            still = voted_correct(model, found, y[rows], draws)
            pgd_adv[rows[~still]] = found[~still]
            pgd_left[rows] = still
        left &= fgsm_left & pgd_left
        if k >= at:
            _ensemble(model, x, y, float(e), domain, attack, options, stochastic, seed + k, left, beyond)
        cheap_fail = fgsm_left & pgd_left
        columns.append((fgsm_left.copy(), pgd_left.copy(), cheap_fail & (beyond == BY_SQUARE),
                        cheap_fail & (beyond == BY_APGD), left.copy()))
    fgsm_ok, pgd_ok, square_only, apgd_only, robust = (np.stack(c, 1) for c in zip(*columns))
    return Sweep(fgsm_ok, pgd_ok, square_only, apgd_only, robust, pgd_adv)


def _ensemble(model, x, y, eps: float, domain: Domain, attack: PGD, options: Robustness, stochastic: bool,
              seed: int, left: np.ndarray, beyond: np.ndarray) -> None:
    """APGD-CE, APGD-T and Square at `eps`, each on what the attacks before it left (as AutoAttack runs them),
    starting from `left`: what they break is cleared in `left` and marked in `beyond` with the attack."""
    draws = attack.draws
    configs = []  # APGD-CE, then APGD-T
    if options.apgd_steps:
        configs.append(APGD(norm=attack.norm, steps=options.apgd_steps, draws=draws))
        if options.apgd_targets:
            configs.append(APGD(norm=attack.norm, steps=options.apgd_steps, targets=options.apgd_targets,
                                draws=draws))
    rows = np.flatnonzero(left)
    for config in configs:
        if len(rows):
            fooled = ~voted_correct(model, apgd(model, x[rows], y[rows], eps, domain, config=config, seed=seed),
                                    y[rows], draws)
            beyond[rows[fooled]] = BY_APGD
            rows = rows[~fooled]
    if not stochastic and len(rows):
        found = square_attack(model, x[rows], y[rows], eps, domain, norm=attack.norm,
                              queries=options.square_queries, p_init=options.square_p_init, seed=seed)
        fooled = ~voted_correct(model, found, y[rows], draws)
        beyond[rows[fooled]] = BY_SQUARE
    left[beyond > 0] = False
