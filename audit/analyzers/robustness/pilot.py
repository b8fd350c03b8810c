"""The robustness plan's pilot: what the attacks will cost depends on the model. A fragile model's examples break
at the first epsilons of the sweep in a few PGD steps and leave nothing to APGD and Square; a robust model's
survive every PGD step at each epsilon and then the ensemble's. So before the work, PGD with PILOT_STEPS steps
runs over the sweep's epsilons, smallest first, on a few correctly classified rows of the plan's probe, each
until it breaks: where each first broke is what `Robustness.cost` prices the attacks by.

Measured against the passes the analyzer then made (its defaults, 256 examples): backward passes planned
0.83x those made on the digits CNN, 0.96x on its fragile copy, 0.99x on the adult MLP and 0.96-1.00x on
benchmarks/memory_bound.py's ResNet (random and trained), where the fixed share surviving each epsilon that the
plan assumed before planned 1.5x, 3.2x, 0.64x and 2.7-3.3x. With 3 steps instead of 5 the pilot left a fifth of
the fragile CNN's examples unbroken one epsilon longer than the analyzer's 20-step PGD.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from audit.analyzers.robustness.epsilons import attack_grid
from audit.methods.attributions.sampling import seeded
from audit.methods.robustness.attacks import PGD, pgd
from audit.methods.robustness.stochastic import is_stochastic, voted_correct

if TYPE_CHECKING:
    from audit.analyzers.robustness.analyzer import Robustness

PILOT_STEPS = 5
PILOT_ROWS = 32  # at most (the probe's rows), and at most an 8th of the examples attacked (at least MIN_PILOT_ROWS)
MIN_PILOT_ROWS = 8


@dataclass(frozen=True)
class Pilot:
    """Per piloted example, the index in the sweep's epsilons (ascending) of the first at which PGD broke it
    (their number: none did); and the forward passes each attack step makes (a model random at inference: the
    analyzer's draws)."""

    broken_at: np.ndarray
    draws: int = 1


def pilot(options: Robustness, model, data) -> Pilot | None:
    """The pilot on the probe's rows `data` (seeded, with the analyzer's draws on a model random at inference);
    None where the model gets none of them right."""
    with seeded(0, model.device):
        return _pilot(options, model, data)


def _pilot(options: Robustness, model, data) -> Pilot | None:
    x, y = model.encode(data), torch.from_numpy(model.labels(data))
    domain, _, grid, _ = attack_grid(options, model, data, x)
    draws = options.draws if is_stochastic(model, x) else 1
    rows = max(MIN_PILOT_ROWS, min(PILOT_ROWS, options.sample_rows(model) // 8))
    correct = np.flatnonzero(voted_correct(model, x, y, draws))[:rows]
    if not len(correct):
        return None
    x, y = x[correct], y[correct]
    attack = PGD(norm=options.norm, steps=PILOT_STEPS, draws=draws)
    broken_at = np.full(len(y), len(grid))
    for k, eps in enumerate(grid):
        left = np.flatnonzero(broken_at == len(grid))
        if not len(left):
            break
        still = voted_correct(model, pgd(model, x[left], y[left], float(eps), domain, config=attack, seed=k),
                              y[left], draws)
        broken_at[left[~still]] = k
    return Pilot(broken_at, draws)
