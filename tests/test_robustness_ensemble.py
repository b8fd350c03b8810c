"""Where the expensive attacks run and how long PGD attacks an example, counted on a linear model whose distance
to the boundary is known: APGD and Square run from the configured epsilon on and never below it, and PGD (in the
sweep and in the flip epsilon's bisection) stops attacking an example once it is misclassified."""

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
from audit.methods.robustness.attacks import PGD, flip_epsilons, pgd
from audit.methods.robustness.domain import input_domain
from audit.methods.robustness.stochastic import voted_correct

sweep_module = importlib.import_module("audit.analyzers.robustness.sweep")
EPSILON = 0.2
SWEEP = (0.25, 0.5, 1.0, 2.0, 4.0)


class Counting(nn.Module):
    """A linear two-class model that records the rows of every forward pass."""

    def __init__(self, w, b: float):
        super().__init__()
        self.w = nn.Parameter(torch.tensor(w, dtype=torch.float32))
        self.b = nn.Parameter(torch.tensor(b))
        self.rows: list[int] = []

    def forward(self, x):
        self.rows.append(len(x))
        score = x @ self.w + self.b
        return torch.stack([-score, score], dim=1)


@pytest.fixture()
def linear():
    rng = np.random.default_rng(1)
    frame = pd.DataFrame(rng.normal(size=(80, 4)), columns=list("abcd"))
    w, b = [1.0, -0.5, 0.25, 0.75], 0.1
    score = frame.to_numpy() @ np.array(w) + b
    labels = (score > 0).astype(np.int64)
    data = Dataset(frame, labels, ("no", "yes"), "tabular")
    module = Counting(w, b)
    model = wrap(module, modality="tabular", classes=("no", "yes"), feature_names=list("abcd"))
    x, y = model.encode(data), torch.from_numpy(labels)
    domain = input_domain(model, data, x).without_bounds()
    distance = np.abs(score) / (np.abs(w) * domain.scale.numpy()).sum()
    return model, module, data, x, y, domain, distance


def test_apgd_and_square_run_from_the_configured_epsilon_on_only(linear, monkeypatch):
    model, _, data, *_ = linear
    calls = defaultdict(list)  # attack -> (epsilon, rows) per call

    def counted(name, attack):
        def run(model_, part, labels, eps, *args, **kwargs):
            calls[name].append((round(float(eps), 6), len(part)))
            return attack(model_, part, labels, eps, *args, **kwargs)
        return run

    for name in ("apgd", "square_attack", "pgd"):
        monkeypatch.setattr(sweep_module, name, counted(name, getattr(sweep_module, name)))
    options = Robustness(samples=80, epsilon=EPSILON, sweep=SWEEP, steps=10, apgd_steps=5, apgd_targets=1,
                         square_queries=20, flip_refine=1)
    result = options.run(model, data, seed=0)
    grid = [round(EPSILON * m, 6) for m in SWEEP]
    assert sorted({e for e, _ in calls["pgd"]}) == grid  # PGD gives the curve at every epsilon
    for name in ("apgd", "square_attack"):
        where = {e for e, _ in calls[name]}
        assert where and min(where) == EPSILON, (name, where)  # never below the configured epsilon
    # APGD-CE at the configured epsilon takes every example FGSM and PGD left there, and no more
    at = grid.index(EPSILON)
    arrays = result.arrays
    left = int((arrays["fgsm_correct"][:, at] & arrays["pgd_correct"][:, at]).sum())
    assert calls["apgd"][0] == (EPSILON, left) and left > 5
    curve = result.tables["accuracy_by_epsilon"]
    assert curve["attacks"].tolist() == ["none"] + ["FGSM, PGD"] * at + ["FGSM, PGD, APGD-CE, APGD-T, Square"] * (
        len(grid) - at)
    assert curve["apgd_only_share"].iloc[1:at + 1].isna().all()  # not run there: unknown, not 0
    checked = result.tables["sanity_checks"]
    assert checked.loc[checked["name"] == "pgd_not_beaten_by_square", "epsilon"].tolist() == [EPSILON]


def test_pgd_stops_attacking_an_example_once_it_is_misclassified(linear):
    model, module, _, x, y, domain, distance = linear
    correct = voted_correct(model, x, y, 1)
    near, far = correct & (distance < 0.09), correct & (distance > 0.3)
    rows = np.flatnonzero(near | far)
    assert near.sum() >= 2 and far.sum() >= 10
    steps = 5  # of 0.1 each (2.5 / steps of epsilon 0.2), without a random start
    module.rows.clear()
    adv = pgd(model, x[rows], y[rows], 0.2, domain, config=PGD(steps=steps, random_start=False))
    fooled = ~voted_correct(model, adv, y[rows], 1)
    assert np.array_equal(fooled, near[rows])  # the near ones flip at the first step, the far ones cannot
    # the near ones are dropped after the step that flips them: every later pass holds only the far ones
    passes = module.rows[module.rows.index(len(rows)):][:steps + 1]  # after the passes sizing the batch
    assert passes[:2] == [len(rows)] * 2 and passes[2:] == [int(far.sum())] * (steps - 1)


def test_the_flip_bisection_spends_one_pass_on_an_adversarial_that_stays_adversarial(linear):
    model, module, _, x, y, domain, distance = linear
    correct = voted_correct(model, x, y, 1)
    grid = np.array([0.5, 1.0])
    rows = np.flatnonzero(correct & (distance < 0.1))  # flipped at the first grid epsilon, far inside its bisection
    assert len(rows) >= 4
    config = PGD(steps=10)
    adversarial = pgd(model, x[rows], y[rows], 0.5, domain, config=config)
    assert not voted_correct(model, adversarial, y[rows], 1).any()
    module.rows.clear()
    flip = flip_epsilons(model, x[rows], y[rows], grid, np.zeros((len(rows), 2), dtype=bool), domain, config=config,
                         refine=1, adversarial=adversarial)
    assert np.all(flip == 0.25)  # each stayed adversarial at half the bracket ...
    # ... found by the first forward pass, then the vote; a step would add a pass over them (the passes of one
    # or two rows size the batches)
    assert [n for n in module.rows if n > 2] == [len(rows)] * 2, module.rows
