"""The flip epsilon's bisection at the default depth (3: an eighth of the sweep's gap around it) gives each
example's value of one more bisection (4, the former default) or one sixteenth of that gap above it: never more."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from torch import nn

from audit.analyzers.robustness.analyzer import Robustness
from audit.core.dataset import Dataset
from audit.core.model import wrap
from audit.methods.robustness.attacks import flip_epsilons, pgd
from audit.methods.robustness.domain import input_domain


def test_default_bisection_is_one_sixteenth_of_the_gap_coarser_at_most():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(120, 4)), columns=list("abcd"))
    torch.manual_seed(0)
    module = nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Linear(16, 2))
    labels = module(torch.tensor(frame.to_numpy(), dtype=torch.float32)).argmax(1).numpy()
    data = Dataset(frame, labels.astype(np.int64), ("no", "yes"), "tabular")
    model = wrap(module, modality="tabular", classes=("no", "yes"), feature_names=list("abcd"))
    x, y = model.encode(data), torch.from_numpy(data.labels)
    domain = input_domain(model, data, x).without_bounds()
    grid = np.array([0.25, 0.5, 1.0, 2.0])
    adversarial, correct = x.clone(), np.ones((len(x), len(grid)), dtype=bool)
    for k, e in enumerate(grid):  # the sweep: PGD at each epsilon, its first adversarial of each example kept
        found = pgd(model, x, y, e, domain, seed=k)
        correct[:, k] = (model.logits(found).argmax(1) == y).numpy() & (k == 0 or correct[:, k - 1])
        first = ~correct[:, k] & (k == 0 or correct[:, k - 1])
        adversarial[first] = found[first]

    def flips(refine: int) -> np.ndarray:
        return flip_epsilons(model, x, y, grid, correct, domain, refine=refine, seed=9, adversarial=adversarial)

    default, finer = flips(Robustness().flip_refine), flips(4)
    assert Robustness().flip_refine == 3
    first = (~correct).argmax(axis=1)
    gap = grid[first] - np.where(first > 0, grid[np.maximum(first - 1, 0)], 0.0)
    inside = np.isfinite(finer)
    assert inside.sum() > 30 and np.array_equal(np.isfinite(default), inside)
    coarser = (default[inside] - finer[inside]) / gap[inside]
    assert np.all(np.isclose(coarser, 0) | np.isclose(coarser, 1 / 16))
    assert np.isclose(coarser, 1 / 16).any() and np.isclose(coarser, 0).any()
