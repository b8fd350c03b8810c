"""The attack sweep attacks only what no attack has broken yet: on a linear model, whose distance to the
boundary is known, an example broken at a small epsilon is never attacked at a larger one, APGD and Square run
only from the configured epsilon on (there on all that FGSM and PGD left), the robust
accuracy equals that of attacking every example at every epsilon (and the truth), and the flip epsilon
found by bisection from the sweep's adversarials is within the bisection's resolution of a fine sweep."""

from __future__ import annotations

import importlib
from collections import defaultdict

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from audit.analyzers.robustness.analyzer import Robustness
from audit.core.dataset import Dataset
from audit.core.model import wrap
from audit.methods.robustness.apgd import APGD, apgd
from audit.methods.robustness.attacks import PGD, fgsm, flip_epsilons, pgd
from audit.methods.robustness.domain import input_domain
from audit.methods.robustness.square import square_attack
from audit.methods.robustness.stochastic import voted_correct

sweep_module = importlib.import_module("audit.analyzers.robustness.sweep")
GRID = np.array([0.1, 0.2, 0.4, 0.8, 1.6])
AT = 2  # the configured epsilon's place in GRID: APGD and Square run there and at the larger epsilons only
OPTIONS = Robustness(steps=10, apgd_steps=10, square_queries=100)
ATTACK = PGD(steps=OPTIONS.steps)


class Linear(nn.Module):
    def __init__(self, w, b: float):
        super().__init__()
        self.w = nn.Parameter(torch.tensor(w, dtype=torch.float32))
        self.b = nn.Parameter(torch.tensor(b))

    def forward(self, x):
        score = x @ self.w + self.b
        return torch.stack([-score, score], dim=1)


@pytest.fixture(scope="module")
def linear():
    """A linear model on four standardized features, its inputs and each example's true L-inf distance to
    the boundary (the margin over the L1 norm of the weights)."""
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(120, 4)), columns=list("abcd"))
    w, b = [1.0, -0.5, 0.25, 0.75], 0.1
    score = frame.to_numpy() @ np.array(w) + b
    labels = (score > 0).astype(np.int64)
    labels[:10] = 1 - labels[:10]  # a few misclassified examples, never attacked
    data = Dataset(frame, labels, ("no", "yes"), "tabular")
    model = wrap(Linear(w, b), modality="tabular", classes=("no", "yes"), feature_names=list("abcd"))
    x, y = model.encode(data), torch.from_numpy(labels)
    domain = input_domain(model, data, x).without_bounds()
    distance = np.abs(score) / (np.abs(w) * domain.scale.numpy()).sum()
    correct = voted_correct(model, x, y, 1)
    return model, x, y, domain, distance, correct


def rows_of(x: torch.Tensor, part: torch.Tensor) -> list[int]:
    """The indices in `x` of the clean rows an attack was handed."""
    return [int(torch.nonzero((x == row).all(dim=1)).flatten()[0]) for row in part]


def test_an_example_broken_at_a_small_epsilon_is_never_attacked_again(linear, monkeypatch):
    model, x, y, domain, distance, correct = linear
    attacked = defaultdict(set)  # (attack, epsilon index) -> examples

    def counted(name, attack):
        def run(model_, part, labels, eps, *args, **kwargs):
            attacked[name, int(np.searchsorted(GRID, float(eps)))].update(rows_of(x, part))
            return attack(model_, part, labels, eps, *args, **kwargs)
        return run

    for name, attack in (("fgsm", fgsm), ("pgd", pgd), ("apgd", apgd), ("square", square_attack)):
        monkeypatch.setattr(sweep_module, attack.__name__, counted(name, attack))
    sweep = sweep_module.attack_sweep(model, x, y, correct, GRID, domain, ATTACK, OPTIONS, False, 0, at=AT)

    first_broken = np.where(sweep.robust.all(1), len(GRID), (~sweep.robust).argmax(1))
    first_broken[~correct] = -1
    pgd_broken = np.where(sweep.pgd.all(1), len(GRID), (~sweep.pgd).argmax(1))
    left_at = set(np.flatnonzero(sweep.fgsm[:, AT] & sweep.pgd[:, AT]))
    assert attacked["apgd", AT] == left_at and len(left_at) > 10  # the expensive attacks: on what FGSM, PGD left
    assert attacked["square", AT] <= left_at
    for k in range(len(GRID)):
        for name in ("apgd", "square"):  # ... from the configured epsilon on, never below it
            assert k >= AT or not attacked[name, k], (name, k)
            assert all(first_broken[i] >= k for i in attacked[name, k]), (name, k)
        assert all(pgd_broken[i] >= k for i in attacked["pgd", k])
        assert not (set().union(*(attacked[n, k] for n in ("fgsm", "pgd", "apgd", "square"))) & set(
            np.flatnonzero(~correct)))
    # a broken example stays broken at every larger epsilon, and the work shrank as the epsilon grew
    assert (np.diff(sweep.robust.astype(int), axis=1) <= 0).all()
    assert (np.diff(sweep.pgd.astype(int), axis=1) <= 0).all()
    assert len(attacked["pgd", len(GRID) - 1]) < len(attacked["pgd", 0]) / 2
    assert sum(len(attacked["square", k]) for k in range(len(GRID))) < (len(GRID) - AT) * correct.sum() / 2


def exhaustive_robust(model, x, y, correct, domain) -> np.ndarray:
    """Every attack at every epsilon on every correct example (each on what the attacks before it at the
    same epsilon left): the sweep without carrying what smaller epsilons broke."""
    runs = [lambda xs, ys, e: fgsm(model, xs, ys, e, domain),
            lambda xs, ys, e: pgd(model, xs, ys, e, domain, config=ATTACK),
            lambda xs, ys, e: apgd(model, xs, ys, e, domain, config=APGD(steps=OPTIONS.apgd_steps)),
            lambda xs, ys, e: apgd(model, xs, ys, e, domain,
                                   config=APGD(steps=OPTIONS.apgd_steps, targets=OPTIONS.apgd_targets)),
            lambda xs, ys, e: square_attack(model, xs, ys, e, domain, queries=OPTIONS.square_queries)]
    columns = []
    for e in GRID:
        ok = correct.copy()
        for run in runs:
            rows = np.flatnonzero(ok)
            if len(rows):
                ok[rows] = voted_correct(model, run(x[rows], y[rows], float(e)), y[rows], 1)
        columns.append(ok)
    return np.stack(columns, 1)


def test_robust_accuracy_equals_the_exhaustive_sweep_and_the_truth(linear):
    model, x, y, domain, distance, correct = linear
    sweep = sweep_module.attack_sweep(model, x, y, correct, GRID, domain, ATTACK, OPTIONS, False, 0, at=AT)
    exhaustive = exhaustive_robust(model, x, y, correct, domain)
    truth = correct[:, None] & (distance[:, None] > GRID[None, :])
    clear = np.abs(distance[:, None] - GRID[None, :]) > 1e-3  # not on the boundary to float precision
    assert np.array_equal(sweep.robust[clear], truth[clear])
    assert np.array_equal(sweep.robust[clear], exhaustive[clear])
    assert 0.1 < sweep.robust[:, 2].mean() < 0.9  # the planted distances straddle the grid


def test_flip_epsilon_by_bisection_from_the_sweeps_adversarials_matches_a_fine_sweep(linear):
    model, x, y, domain, distance, correct = linear
    sweep = sweep_module.attack_sweep(model, x, y, correct, GRID, domain, ATTACK, OPTIONS, False, 0, at=AT)
    refine = 5
    found = flip_epsilons(model, x[correct], y[correct], GRID, sweep.pgd[correct], domain, config=ATTACK,
                          refine=refine, adversarial=sweep.pgd_adv[correct])
    fine = np.linspace(0.005, GRID[-1], 320)
    xs, ys = x[correct], y[correct]
    fine_flip = np.full(len(ys), np.inf)
    for e in fine:  # the first fine epsilon at which PGD flips each example
        rows = np.flatnonzero(np.isinf(fine_flip))
        flipped = ~voted_correct(model, pgd(model, xs[rows], ys[rows], float(e), domain, config=ATTACK), ys[rows], 1)
        fine_flip[rows[flipped]] = e
    inside = np.isfinite(fine_flip)
    assert inside.sum() > 50 and np.array_equal(np.isfinite(found), inside)
    resolution = np.diff(GRID, prepend=0).max() / 2**refine + np.diff(fine).max()
    assert np.all(np.abs(found[inside] - fine_flip[inside]) <= resolution)
    assert np.all(found[inside] >= distance[correct][inside] - 1e-4)  # never below the true distance


def test_adversarials_from_a_larger_ball_are_projected_into_the_smaller_one(linear):
    model, x, y, domain, distance, correct = linear
    far = x + 3.0 * torch.sign(torch.randn(x.shape, generator=torch.Generator().manual_seed(0)))
    for norm in ("linf", "l2"):
        config = PGD(norm=norm, steps=3)
        moved = (pgd(model, x, y, 0.2, domain, config=config, start=far) - x) / domain.scale  # in the domain's units
        size = moved.abs().amax(1) if norm == "linf" else moved.norm(dim=1)
        assert float(size.max()) <= 0.2 + 1e-5
