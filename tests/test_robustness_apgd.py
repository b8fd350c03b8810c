"""APGD with the DLR and targeted DLR losses: it breaks a saturated softmax that blinds
cross-entropy PGD, beats or equals PGD on every example of a plain network, follows the
paper's step-size schedule, is deterministic for a seed, and the analyzer counts what it
breaks (and only when it runs)."""

from __future__ import annotations

import pytest
import torch
from masked import Saturated

import audit
from audit.analyzers.robustness.analyzer import Robustness
from audit.core.model import Model
from audit.methods.robustness.apgd import APGD, apgd, checkpoints
from audit.methods.robustness.attacks import pgd
from audit.methods.robustness.domain import input_domain

EPS = 0.1


@pytest.fixture(scope="module")
def digits(digits_cnn):
    data = audit.load_dataset("digits", "test").sample(64, seed=0)
    x, y = digits_cnn.encode(data), torch.from_numpy(digits_cnn.labels(data))
    return digits_cnn, data, x, y, input_domain(digits_cnn, data, x)


def correct(model, adv, y) -> torch.Tensor:
    return model.logits(adv).argmax(1) == y


def test_scale_free_losses_break_a_saturated_softmax_that_blinds_cross_entropy(digits):
    plain, data, x, y, domain = digits
    saturated = Model(Saturated(plain.module), plain.task)
    clean = correct(plain, x, y).float().mean()
    accuracy = {}
    for name, model in (("plain", plain), ("saturated", saturated)):
        for attack, config in (("ce", APGD(steps=20)), ("dlr", APGD(steps=20, loss="dlr")),
                               ("t", APGD(steps=20, targets=3))):
            accuracy[name, attack] = float(correct(model, apgd(model, x, y, EPS, domain, config=config), y)
                                           .float().mean())
        accuracy[name, "pgd"] = float(correct(model, pgd(model, x, y, EPS, domain), y).float().mean())
    assert accuracy["plain", "pgd"] < clean - 0.2  # the epsilon bites
    # Planted: the logits times 1e4 leave the decisions but zero the cross-entropy's gradient.
    assert accuracy["saturated", "pgd"] >= clean - 0.02 and accuracy["saturated", "ce"] >= clean - 0.02
    for loss in ("dlr", "t"):
        assert accuracy["saturated", loss] <= accuracy["plain", "pgd"] + 0.05
        assert accuracy["saturated", loss] == pytest.approx(accuracy["plain", loss], abs=0.05)
    # Removed: on the plain network cross-entropy sees what DLR sees.
    assert accuracy["plain", "ce"] == pytest.approx(accuracy["plain", "t"], abs=0.05)


def test_equals_or_beats_pgd_on_every_example(digits):
    model, data, x, y, domain = digits
    for eps in (0.05, EPS):
        by_pgd = ~correct(model, pgd(model, x, y, eps, domain), y)
        by_apgd = ~correct(model, apgd(model, x, y, eps, domain, config=APGD(steps=20, targets=3)), y)
        assert by_pgd.any() and not (by_pgd & ~by_apgd).any()
        assert by_apgd.sum() >= by_pgd.sum()


def test_same_seed_same_points_and_per_example_epsilons(digits):
    model, data, x, y, domain = digits
    config = APGD(steps=10, targets=2)
    first = apgd(model, x, y, EPS, domain, config=config, seed=4)
    assert torch.equal(first, apgd(model, x, y, EPS, domain, config=config, seed=4))
    assert not torch.equal(first, apgd(model, x, y, EPS, domain, config=config, seed=5))
    eps = torch.linspace(0.0, 0.2, len(x))
    adv = apgd(model, x, y, eps, domain, config=config)
    assert bool(((adv - x).flatten(1).abs().max(1).values <= eps + 1e-6).all())
    assert torch.equal(adv[0], x[0])  # epsilon 0 moves nothing


def test_step_size_checkpoints_follow_the_paper():
    # Croce & Hein (2020), section 3.2: p_0 = 0, p_1 = 0.22, p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06).
    expected, p = [], [0.0, 0.22]
    while p[-1] <= 1.0:
        expected.append(round(p[-1] * 100))
        p.append(p[-1] + max(p[-1] - p[-2] - 0.03, 0.06))
    assert checkpoints(100) == expected == [22, 41, 57, 70, 80, 87, 93, 99]
    assert checkpoints(10)[0] == 2 and checkpoints(1) == [1]


def test_analyzer_counts_what_apgd_alone_breaks(digits):
    plain, data, *_ = digits
    saturated = Model(Saturated(plain.module), plain.task)
    config = dict(samples=64, epsilon=EPS, sweep=(1.0,), steps=5, square_queries=1, flip_refine=1,
                  apgd_steps=20, apgd_targets=3)
    with_apgd = Robustness(**config).run(saturated, data, seed=0)
    without = Robustness(**config | {"apgd_steps": 0}).run(saturated, data, seed=0)
    curve = with_apgd.tables["accuracy_by_epsilon"].set_index("epsilon").loc[EPS]
    assert curve["apgd_only_share"] > 0.2
    # APGD and Square each broke examples that FGSM and PGD left, none twice.
    assert curve["robust_accuracy"] <= curve["pgd_accuracy"] - curve["apgd_only_share"] - curve["square_only_share"] \
        + 1e-9
    assert without.tables["accuracy_by_epsilon"]["apgd_only_share"].eq(0).all()
    assert with_apgd.metrics["robustness.robust_accuracy"] <= without.metrics["robustness.robust_accuracy"] - 0.2
    robust, pgd_ok = with_apgd.arrays["robust_correct"], with_apgd.arrays["pgd_correct"]
    assert not (robust & ~pgd_ok).any()
    # What APGD broke beyond PGD is the masking signal: the saturated softmax is flagged.
    assert with_apgd.metrics["robustness.sanity_passed"] == 0.0
