"""Ground truth for the attack sanity checks: a small CNN and four wrappers that mask or
obfuscate its gradient (a constant misleading gradient, rounded inputs, saturated logits,
Gaussian input noise). Each wrapper is flagged at epsilon 0.025, 0.05 and 0.1, its reported
robust accuracy is within 3 points of APGD-T's (torchattacks, test-only), and the plain
network is never flagged."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchattacks  # test-only: the reference attack
from conftest import train_quick
from masked import ConstantGradient, Noisy, Rounded, Saturated

import audit
from audit.analyzers.robustness.analyzer import Robustness
from audit.core.model import Model
from audit.methods.robustness.stochastic import voted_correct
from audit.policy.thresholds import DEFAULT_VALUES

EPSILONS = (0.025, 0.05, 0.1)
CONFIG = dict(epsilon=0.05, sweep=(0.5, 1.0, 2.0), steps=20)  # the grid is EPSILONS
DRAWS = Robustness().draws


@pytest.fixture(scope="module")
def small_cnn():
    return train_quick("cnn", "digits", epochs=10, lr=0.003, model_config={"channels": (8, 16), "hidden": 32})


@pytest.fixture(scope="module")
def images():
    return audit.load_dataset("digits", "test").sample(100, seed=0)


def wrapped(name: str, model: Model) -> Model:
    inner = model.module
    module = {"plain": lambda: inner, "constant_gradient": lambda: ConstantGradient(inner, 64, len(model.classes)),
              "rounded": lambda: Rounded(inner), "saturated": lambda: Saturated(inner),
              "noisy": lambda: Noisy(inner)}[name]()
    return Model(module, model.task)


@pytest.fixture(scope="module")
def plain_apgdt(small_cnn, images):
    """APGD-T's points on the plain network at each epsilon: adversarial points of every wrapper that
    keeps its decisions, whatever the wrapper does to the gradient."""
    x, y = small_cnn.encode(images), torch.from_numpy(small_cnn.labels(images))
    return {eps: torchattacks.APGDT(small_cnn.module, eps=eps, steps=50, n_classes=10, seed=0)(x, y)
            for eps in EPSILONS}


def apgdt_accuracy(model: Model, plain: Model, images, eps: float, transferred: torch.Tensor, *,
                   stochastic: bool) -> float:
    """Robust accuracy under APGD-T (targeted DLR; averaged over draws on a random model) run on the
    model, with an example counted broken too when the plain network's APGD-T point breaks it;
    scored like ours (the majority of DRAWS passes on a random model)."""
    x, y = model.encode(images), torch.from_numpy(model.labels(images))
    draws = DRAWS if stochastic else 1
    if model.module is plain.module:
        return float(voted_correct(model, transferred, y, 1).mean())
    torch.manual_seed(0)
    own = torchattacks.APGDT(model.module, eps=eps, steps=20 if stochastic else 25, n_classes=len(model.classes),
                             seed=0, eot_iter=5 if stochastic else 1)(x, y)
    return float((voted_correct(model, own, y, draws) & voted_correct(model, transferred, y, draws)).mean())


@pytest.mark.parametrize("name", ["plain", "constant_gradient", "rounded", "saturated", "noisy"])
def test_masked_gradients_are_flagged_and_robust_accuracy_matches_apgdt(small_cnn, images, plain_apgdt, name):
    model = wrapped(name, small_cnn)
    result = Robustness(**CONFIG).run(model, images, seed=0)
    checks = result.tables["sanity_checks"]
    failed = checks[~checks["passed"]]
    curve = result.tables["accuracy_by_epsilon"].set_index("epsilon")
    assert curve.index[1:].tolist() == pytest.approx(EPSILONS)
    distrust = [f for f in Robustness(**CONFIG).findings(result, DEFAULT_VALUES)
                if {"robustness.sanity_passed", "robustness.stochastic_model"} & set(f.metrics)]
    if name == "plain":
        assert result.metrics["robustness.sanity_passed"] == 1.0 and failed.empty and distrust == []
    else:
        assert result.metrics["robustness.sanity_passed"] == 0.0
        assert any(f.severity in ("high", "medium") for f in distrust)
    square = set(failed.loc[failed["name"] == "pgd_not_beaten_by_square", "epsilon"].round(4))
    if name in ("constant_gradient", "saturated"):
        assert square == {CONFIG["epsilon"]}  # caught at the configured epsilon, the one where the gate reads
        assert result.metrics["robustness.pgd_accuracy"] > result.metrics["robustness.robust_accuracy"] + 0.05
    if name in ("rounded", "saturated"):  # a zero gradient: no random start can pass the large-epsilon check
        assert "large_epsilon_breaks_model" in set(failed["name"])
    if name == "noisy":
        assert result.metrics["robustness.stochastic_model"] == 1.0
        assert set(failed["name"]) == {"model_is_deterministic"}
    else:
        assert result.metrics["robustness.stochastic_model"] == 0.0
    for eps in EPSILONS:
        ours = curve.loc[eps, "robust_accuracy"]
        if eps < CONFIG["epsilon"]:  # below the configured epsilon only FGSM and PGD run, and the curve says so
            assert curve.loc[eps, "attacks"] == "FGSM, PGD"
            k = list(EPSILONS).index(eps)
            arrays = result.arrays
            assert np.array_equal(arrays["robust_correct"][:, k],
                                  arrays["fgsm_correct"][:, k] & arrays["pgd_correct"][:, k])
            continue
        assert curve.loc[eps, "attacks"] == "FGSM, PGD" + (", APGD-CE, APGD-T" if name == "noisy" else
                                                           ", APGD-CE, APGD-T, Square")
        reference = apgdt_accuracy(model, small_cnn, images, eps, plain_apgdt[eps], stochastic=name == "noisy")
        # Never more than 3 points kinder than APGD-T. Lower is no error (every point that counts as broken
        # was checked on the model), and happens where APGD-T itself is blinded (rounding, noise).
        assert ours <= reference + 0.03, (eps, ours, reference)
        if name in ("plain", "constant_gradient", "saturated"):  # the plain network's decisions: APGD-T is exact
            assert ours >= reference - 0.03, (eps, ours, reference)


def test_same_seed_same_numbers_on_a_random_model(small_cnn, images):
    model = wrapped("noisy", small_cnn)
    config = dict(samples=40, epsilon=0.05, sweep=(1.0,), steps=5)
    first = Robustness(**config).run(model, images, seed=3)
    assert Robustness(**config).run(model, images, seed=3).metrics == first.metrics


def test_votes_decide_a_random_models_answer():
    class Coin(torch.nn.Module):
        """Class 0 with probability 0.3 per pass, else class 1."""

        def forward(self, x):
            heads = (torch.rand(len(x)) < 0.3).float()
            return torch.stack([heads, 1 - heads], dim=1)

    model = audit.wrap(Coin(), modality="tabular", classes=["a", "b"], feature_names=["f"])
    x, y = torch.zeros(400, 1), torch.zeros(400, dtype=torch.long)
    torch.manual_seed(0)
    one = voted_correct(model, x, y, 1)
    assert 0.2 < one.mean() < 0.4  # one draw: a lucky 30% look correct
    assert voted_correct(model, x, y, 11).mean() < 0.1  # the majority of 11 draws: almost never
