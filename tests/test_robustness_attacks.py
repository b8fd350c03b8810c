"""FGSM, PGD, APGD and the gradient-free search: strength against the reference libraries,
ground truth on a linear model, and the domain they must stay in."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
import torchattacks  # test-only dependencies, the references our PGD must match
from art.attacks.evasion import ProjectedGradientDescent
from art.estimators.classification import PyTorchClassifier
from torch import nn

import audit
from audit.core.dataset import Dataset
from audit.core.model import wrap
from audit.methods.robustness.apgd import APGD, apgd
from audit.methods.robustness.attacks import PGD, fgsm, flip_epsilons, pgd
from audit.methods.robustness.domain import input_domain
from audit.methods.robustness.square import square_attack

EPS, STEPS = 0.1, 10


@pytest.fixture(scope="module")
def digits(digits_cnn):
    data = audit.load_dataset("digits", "test")
    x, y = digits_cnn.encode(data), torch.from_numpy(digits_cnn.labels(data))
    return digits_cnn, data, x, y


def robust_accuracy(model, adv, y) -> float:
    return float((model.logits(torch.as_tensor(adv)).argmax(1) == y).float().mean())


def test_pgd_at_least_as_strong_as_torchattacks_and_art(digits):
    model, data, x, y = digits
    alpha = 2.5 * EPS / STEPS
    ours = robust_accuracy(model, pgd(model, x, y, EPS, input_domain(model, data, x),
                                      config=PGD(steps=STEPS, step_size=alpha / EPS)), y)

    torch.manual_seed(0)
    ta = torchattacks.PGD(model.module, eps=EPS, alpha=alpha, steps=STEPS, random_start=True)
    theirs_ta = robust_accuracy(model, ta(x, y), y)

    classifier = PyTorchClassifier(
        model=model.module, loss=nn.CrossEntropyLoss(), input_shape=tuple(x.shape[1:]),
        nb_classes=len(model.classes), clip_values=(0.0, 1.0), device_type="cpu")
    art_pgd = ProjectedGradientDescent(
        classifier, norm=np.inf, eps=EPS, eps_step=alpha, max_iter=STEPS, num_random_init=1,
        batch_size=len(x), verbose=False)
    np.random.seed(0)
    theirs_art = robust_accuracy(model, art_pgd.generate(x.numpy(), y=y.numpy()), y)

    clean = robust_accuracy(model, x, y)
    assert clean > 0.9
    assert theirs_ta < clean - 0.2 and theirs_art < clean - 0.2  # the comparison is at a biting epsilon
    assert ours <= theirs_ta + 0.01
    assert ours <= theirs_art + 0.01


def test_l2_pgd_at_least_as_strong_as_torchattacks(digits):
    model, data, x, y = digits
    eps, alpha = 0.5, 0.125
    ours = robust_accuracy(model, pgd(model, x, y, eps, input_domain(model, data, x),
                                      config=PGD(norm="l2", steps=STEPS, step_size=alpha / eps)), y)
    torch.manual_seed(0)
    theirs = robust_accuracy(model, torchattacks.PGDL2(model.module, eps=eps, alpha=alpha, steps=STEPS)(x, y), y)
    assert 0.1 < theirs < robust_accuracy(model, x, y) - 0.2
    assert ours <= theirs + 0.01


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_images_stay_in_range_and_ball(digits, norm):
    model, data, x, y = digits
    domain = input_domain(model, data, x)
    eps = 0.1 if norm == "linf" else 0.8
    for adv in (fgsm(model, x, y, eps, domain, norm=norm),
                pgd(model, x, y, eps, domain, config=PGD(norm=norm, steps=5)),
                square_attack(model, x, y, eps, domain, norm=norm, queries=20),
                apgd(model, x, y, eps, domain, config=APGD(norm=norm, steps=5, targets=2))):
        assert adv.min() >= model.encoder.low and adv.max() <= model.encoder.high
        delta = (adv - x).flatten(1)
        size = delta.abs().max(1).values if norm == "linf" else delta.norm(dim=1)
        assert float(size.max()) <= eps + 1e-5


def test_tables_never_move_one_hot_columns_and_stay_in_data_range(compas_mlp):
    data = audit.load_dataset("compas", "test")
    x_all = compas_mlp.encode(data)
    domain = input_domain(compas_mlp, data, x_all)
    train_low, train_high = (torch.from_numpy(b).float() for b in compas_mlp.encoder.training_bounds())
    assert torch.equal(domain.low, torch.minimum(x_all.min(0).values, train_low))
    assert torch.equal(domain.high, torch.maximum(x_all.max(0).values, train_high))
    few = data.subset(range(5))  # a small audit is bounded by the training range, not by its own five rows
    small = input_domain(compas_mlp, few, compas_mlp.encode(few))
    assert bool((small.low <= train_low).all() and (small.high >= train_high).all())
    sample = data.sample(128, seed=0)
    x, y = compas_mlp.encode(sample), torch.from_numpy(compas_mlp.labels(sample))
    one_hot = ~compas_mlp.encoder.continuous_mask(sample)
    assert one_hot.any() and (~one_hot).any()
    eps = 0.5
    for adv in (fgsm(compas_mlp, x, y, eps, domain), pgd(compas_mlp, x, y, eps, domain),
                square_attack(compas_mlp, x, y, eps, domain, queries=20),
                apgd(compas_mlp, x, y, eps, domain, config=APGD(steps=5)), apgd(compas_mlp, x, y, eps, domain,
                                                                                config=APGD(steps=5, loss="dlr"))):
        assert torch.equal(adv[:, one_hot], x[:, one_hot])
        assert bool((adv >= domain.low - 1e-6).all() and (adv <= domain.high + 1e-6).all())
        assert float((adv - x)[:, ~one_hot].abs().max()) <= eps + 1e-5
        assert not torch.equal(adv, x)


class Linear(nn.Module):
    """Class 1 when w . x + b > 0: the smallest L-inf flip is |w . x + b| / sum(|w_i| * scale_i)."""

    def __init__(self, w, b):
        super().__init__()
        self.w, self.b = nn.Parameter(torch.tensor(w)), nn.Parameter(torch.tensor(b))

    def forward(self, x):
        score = x @ self.w + self.b
        return torch.stack([-score, score], dim=1)


def test_flip_epsilon_matches_the_analytic_distance_to_a_linear_boundary():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(200, 2)) * [1.0, 3.0], columns=["a", "b"])
    w, b = [2.0, -0.5], 0.3
    module = Linear(w, b)
    score = frame.to_numpy() @ np.array(w) + b
    data = Dataset(frame, (score > 0).astype(np.int64), ("no", "yes"), "tabular")
    model = wrap(module, modality="tabular", classes=("no", "yes"), feature_names=["a", "b"])
    x, y = model.encode(data), torch.from_numpy(data.labels)
    domain = input_domain(model, data, x).without_bounds()
    scale = x.std(dim=0).numpy()
    truth = np.abs(score) / (np.abs(w) * scale).sum()
    grid = np.array([0.25, 0.5, 1.0, 2.0, 4.0])
    correct = np.stack([(model.logits(pgd(model, x, y, e, domain)).argmax(1) == y).numpy() for e in grid], 1)
    found = flip_epsilons(model, x, y, grid, correct, domain, refine=6)
    inside = truth <= grid[-1]
    assert inside.sum() > 100 and np.isinf(found[~inside]).all()
    # PGD on a linear model is exact: the found epsilon is the true one, up to the bisection's resolution.
    assert np.all(found[inside] >= truth[inside] - 1e-4)
    assert np.all(found[inside] - truth[inside] <= np.diff(grid, prepend=0).max() / 2**6 + 1e-4)
    assert model.module.w.requires_grad and all(p.grad is None for p in model.module.parameters())  # fresh module
