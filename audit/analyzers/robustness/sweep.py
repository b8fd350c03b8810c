"""The attack sweep: FGSM, PGD, APGD and Square at every epsilon of the grid, each on what the attacks before it
left, as AutoAttack runs them."""

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


@dataclass(frozen=True)
class Sweep:
    """Per example (rows) and grid epsilon (columns): still correct under FGSM, under PGD, broken by
    Square alone (run on what the others left), broken by APGD alone (run on what FGSM and PGD left),
    and correct under all; PGD's points at grid[at]."""

    fgsm: np.ndarray
    pgd: np.ndarray
    square_only: np.ndarray
    apgd_only: np.ndarray
    robust: np.ndarray
    pgd_at: torch.Tensor


def attack_sweep(model, x, y, correct, grid, at: int, domain: Domain, attack: PGD, options: Robustness,
                 stochastic: bool, seed: int) -> Sweep:
    draws = attack.draws
    fgsm_ok, pgd_ok, square_only, apgd_only, pgd_at = [], [], [], [], None
    apgd_attacks = []  # APGD-CE, then APGD-T
    if options.apgd_steps:
        apgd_attacks.append(APGD(norm=attack.norm, steps=options.apgd_steps, draws=draws))
        if options.apgd_targets:
            apgd_attacks.append(APGD(norm=attack.norm, steps=options.apgd_steps, targets=options.apgd_targets,
                                     draws=draws))
    for k, e in enumerate(grid):
        fgsm_ok.append(correct & voted_correct(model, fgsm(model, x, y, e, domain, norm=attack.norm, draws=draws),
                                               y, draws))
        adv = pgd(model, x, y, e, domain, config=attack, seed=seed + k)
        pgd_ok.append(correct & voted_correct(model, adv, y, draws))
        pgd_at = adv if k == at else pgd_at
        left = np.flatnonzero(fgsm_ok[-1] & pgd_ok[-1])
        broken = np.zeros(len(y), dtype=bool)
        for config in apgd_attacks:  # each on what the attacks before it left, as AutoAttack runs them
            if len(left):
                fooled = ~voted_correct(model, apgd(model, x[left], y[left], e, domain, config=config, seed=seed + k),
                                        y[left], draws)
                broken[left[fooled]] = True
                left = left[~fooled]
        apgd_only.append(broken)
        broken = np.zeros(len(y), dtype=bool)
        if not stochastic and len(left):
            found = square_attack(model, x[left], y[left], float(e), domain, norm=attack.norm,
                                  queries=options.square_queries, p_init=options.square_p_init, seed=seed + k)
            broken[left] = ~voted_correct(model, found, y[left], draws)
        square_only.append(broken)
    fgsm_ok, pgd_ok, square_only, apgd_only = (np.stack(a, 1) for a in (fgsm_ok, pgd_ok, square_only, apgd_only))
    return Sweep(fgsm_ok, pgd_ok, square_only, apgd_only, fgsm_ok & pgd_ok & ~square_only & ~apgd_only, pgd_at)
