"""The attack sweep: FGSM, PGD, APGD and Square over the epsilons of the grid, smallest first, each attack on
what the attacks before it left, as AutoAttack runs them.

An adversarial within epsilon is one within every larger epsilon of the same norm ball, so an example an attack
broke at a smaller epsilon counts as broken by that attack at every larger one, without attacking it again.
FGSM and PGD run on the examples they have not yet broken (their curves stay what each attack alone finds);
APGD and Square, the expensive attacks, run only on the examples no attack has broken yet.
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
    not broken by PGD, broken by Square or by APGD while FGSM and PGD still fail, and broken by no attack;
    PGD's first adversarial of each example (at the smallest epsilon where PGD broke it; the input itself
    where PGD never did)."""

    fgsm: np.ndarray
    pgd: np.ndarray
    square_only: np.ndarray
    apgd_only: np.ndarray
    robust: np.ndarray
    pgd_adv: torch.Tensor


def attack_sweep(model, x, y, correct, grid, domain: Domain, attack: PGD, options: Robustness,
                 stochastic: bool, seed: int) -> Sweep:
    draws = attack.draws
    apgd_attacks = []  # APGD-CE, then APGD-T
    if options.apgd_steps:
        apgd_attacks.append(APGD(norm=attack.norm, steps=options.apgd_steps, draws=draws))
        if options.apgd_targets:
            apgd_attacks.append(APGD(norm=attack.norm, steps=options.apgd_steps, targets=options.apgd_targets,
                                     draws=draws))
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
        rows = np.flatnonzero(left)
        for config in apgd_attacks:  # each on what the attacks before it left, as AutoAttack runs them
            if len(rows):
                fooled = ~voted_correct(model, apgd(model, x[rows], y[rows], e, domain, config=config, seed=seed + k),
                                        y[rows], draws)
                beyond[rows[fooled]] = BY_APGD
                rows = rows[~fooled]
        if not stochastic and len(rows):
            found = square_attack(model, x[rows], y[rows], float(e), domain, norm=attack.norm,
                                  queries=options.square_queries, p_init=options.square_p_init, seed=seed + k)
            fooled = ~voted_correct(model, found, y[rows], draws)
            beyond[rows[fooled]] = BY_SQUARE
            rows = rows[~fooled]
        left[:] = False
        left[rows] = True
        cheap_fail = fgsm_left & pgd_left
        columns.append((fgsm_left.copy(), pgd_left.copy(), cheap_fail & (beyond == BY_SQUARE),
                        cheap_fail & (beyond == BY_APGD), left.copy()))
    fgsm_ok, pgd_ok, square_only, apgd_only, robust = (np.stack(c, 1) for c in zip(*columns))
    return Sweep(fgsm_ok, pgd_ok, square_only, apgd_only, robust, pgd_adv)

