"""The robustness analyzer on images and tables: sanity against masked gradients, ranking of
robust training, robustness by group, determinism and a clean model afterwards."""

from __future__ import annotations

import copy
import json

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import train_quick
from masked import Rounded
from torch import nn

import audit
from audit.analyzers.robustness.analyzer import Robustness
from audit.core.dataset import Dataset
from audit._util.errors import AuditInputError
from audit.core.model import Model, wrap
from audit.methods.robustness.attacks import fgsm
from audit.methods.robustness.domain import input_domain
from audit.core.groups import group_labels
from audit.methods.robustness.groups import group_table

FAST = dict(samples=128, sweep=(0.5, 1.0, 2.0), steps=10)


@pytest.fixture(scope="module")
def digits_test():
    return audit.load_dataset("digits", "test")


@pytest.fixture(scope="module")
def plain_result(digits_cnn, digits_test):
    return Robustness(**FAST).run(digits_cnn, digits_test, seed=0)


def test_plain_model_passes_sanity_and_is_broken_at_a_large_epsilon(plain_result):
    r = plain_result
    assert r.metrics["robustness.sanity_passed"] == 1.0
    assert r.warnings == ()
    assert r.metrics["robustness.clean_accuracy"] > 0.9
    assert r.metrics["robustness.pgd_accuracy"] <= r.metrics["robustness.fgsm_accuracy"]
    assert r.metrics["robustness.pgd_accuracy"] < r.metrics["robustness.clean_accuracy"] - 0.2
    curve = r.tables["accuracy_by_epsilon"]
    assert curve["pgd_accuracy"].is_monotonic_decreasing
    assert 0 < r.metrics["robustness.median_flip_epsilon"] < curve["epsilon"].max()
    assert set(r.metrics) <= set(Robustness.metrics)
    assert {"robustness.fgsm_accuracy", "robustness.pgd_accuracy", "robustness.pgd_accuracy_ratio",
            "robustness.corruption_accuracy", "robustness.sanity_passed"} <= set(r.metrics)


def test_gradient_masking_front_is_flagged(digits_cnn, digits_test):
    masked = Model(Rounded(copy.deepcopy(digits_cnn.module)), digits_cnn.task)
    r = Robustness(**FAST).run(masked, digits_test, seed=0)
    assert r.metrics["robustness.sanity_passed"] == 0.0
    checks = r.tables["sanity_checks"].set_index("name")["passed"]
    assert not checks["large_epsilon_breaks_model"] and not checks["pgd_not_beaten_by_square"].all()
    assert r.metrics["robustness.pgd_accuracy"] > r.metrics["robustness.clean_accuracy"] - 0.05  # looks robust
    assert any("masked gradients" in w for w in r.warnings)


def test_noise_augmented_training_ranks_more_robust(plain_result, digits_test):
    noisy = train_quick("cnn", "digits", epochs=10, lr=0.002, noise_std=0.3)
    r = Robustness(**FAST).run(noisy, digits_test, seed=0)
    assert r.metrics["robustness.pgd_accuracy"] > plain_result.metrics["robustness.pgd_accuracy"] + 0.05
    assert r.metrics["robustness.median_flip_epsilon"] > plain_result.metrics["robustness.median_flip_epsilon"]
    assert r.metrics["robustness.sanity_passed"] == 1.0


def adversarially_trained(base: Model, *, epochs: int, eps: float) -> Model:
    """A copy of `base` fine-tuned on clean plus FGSM examples (Goodfellow et al., 2015)."""
    torch.manual_seed(0)
    model = Model(copy.deepcopy(base.module), base.task)
    train = audit.load_dataset("digits", "train")
    x, y = model.encode(train), torch.from_numpy(model.labels(train))
    domain = input_domain(model, train, x)
    optimizer = torch.optim.Adam(model.module.parameters(), lr=0.002)
    for _ in range(epochs):
        for idx in torch.randperm(len(x)).split(64):
            model.module.eval()
            adv = fgsm(model, x[idx], y[idx], eps, domain)
            model.module.train()
            loss = nn.functional.cross_entropy(model.module(torch.cat([x[idx], adv])), torch.cat([y[idx], y[idx]]))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    model.module.eval()
    return model


def test_adversarial_training_ranks_more_robust(digits_cnn, plain_result, digits_test):
    hardened = adversarially_trained(digits_cnn, epochs=5, eps=0.1)
    r = Robustness(**FAST).run(hardened, digits_test, seed=0)
    assert r.metrics["robustness.pgd_accuracy"] > plain_result.metrics["robustness.pgd_accuracy"] + 0.1
    assert r.metrics["robustness.median_flip_epsilon"] > plain_result.metrics["robustness.median_flip_epsilon"]
    assert r.metrics["robustness.sanity_passed"] == 1.0


def test_same_seed_same_numbers_and_the_model_is_left_untouched(digits_cnn, digits_test, plain_result):
    before = {k: v.clone() for k, v in digits_cnn.module.state_dict().items()}
    grads = [p.requires_grad for p in digits_cnn.module.parameters()]
    accumulated = [None if p.grad is None else p.grad.clone() for p in digits_cnn.module.parameters()]
    again = Robustness(**FAST).run(digits_cnn, digits_test, seed=0)
    assert again.metrics == plain_result.metrics
    assert all(torch.equal(before[k], v) for k, v in digits_cnn.module.state_dict().items())
    assert [p.requires_grad for p in digits_cnn.module.parameters()] == grads
    after = [p.grad for p in digits_cnn.module.parameters()]
    assert all((a is None and b is None) or torch.equal(a, b) for a, b in zip(accumulated, after))
    assert not digits_cnn.module.training
    assert json.loads(json.dumps(plain_result.to_dict()))["metrics"]["robustness.pgd_accuracy"] == pytest.approx(
        plain_result.metrics["robustness.pgd_accuracy"])
    assert [f.title for f in plain_result.figures] == [
        "Robust accuracy by epsilon", "Adversarial examples", "Accuracy under corruptions"]


def test_corruptions_hurt_and_are_reported_per_severity(plain_result):
    table = plain_result.tables["corruptions"]
    assert set(table["corruption"]) == {"gaussian_noise", "blur", "brightness", "contrast"}
    assert set(table["severity"]) == {1, 2, 3}
    worst = table.groupby("corruption")["accuracy"].agg(lambda a: a.iloc[-1] <= a.iloc[0])
    assert worst.all()
    assert plain_result.metrics["robustness.corruption_accuracy"] == pytest.approx(table["accuracy"].mean())


class Threshold(nn.Module):
    """Class 1 when x0 > 0; x1 plays no part."""

    def forward(self, x):
        return torch.stack([-x[:, 0], x[:, 0]], dim=1) * 10


def _group_table(planted: bool, seed: int = 0):
    """Rows near the boundary (|x0| < 0.05 std) and far from it (|x0| > 2 std), in groups
    "a" and "b": planted, the near rows are all group "a"; control, groups are random."""
    rng = np.random.default_rng(seed)
    n = 200
    near = np.arange(n) < n // 2
    x0 = np.where(near, rng.uniform(0.005, 0.05, n), rng.uniform(2, 3, n)) * rng.choice([-1, 1], n)
    frame = pd.DataFrame({"x0": x0 / x0.std(), "x1": rng.normal(size=n)})
    group = np.where(near, "a", "b") if planted else rng.choice(["a", "b"], n)
    data = Dataset(frame, (x0 > 0).astype(np.int64), ("no", "yes"), "tabular",
                   sensitive=pd.DataFrame({"group": group}))
    return wrap(Threshold(), modality="tabular", classes=("no", "yes"), feature_names=["x0", "x1"]), data


def test_group_gap_finds_the_less_robust_group():
    model, data = _group_table(planted=True)
    r = Robustness(samples=None, epsilon=0.2, sweep=(0.5, 1.0, 2.0), steps=10).run(model, data, seed=0)
    groups = r.tables["by_group"].set_index("group")
    assert groups.loc["a", "robust_accuracy"] == 0.0 and groups.loc["b", "robust_accuracy"] == 1.0
    assert r.metrics["robustness.group_gap"] == pytest.approx(1.0)
    assert groups.loc["a", "median_flip_epsilon"] < groups.loc["b", "median_flip_epsilon"]

    model, data = _group_table(planted=False)
    r = Robustness(samples=None, epsilon=0.2, sweep=(0.5, 1.0, 2.0), steps=10).run(model, data, seed=0)
    assert r.metrics["robustness.group_gap"] < 0.25


def test_tabular_reference_model_by_group_with_age_buckets(adult_mlp):
    data = audit.load_dataset("adult", "test")
    r = Robustness(**FAST).run(adult_mlp, data, seed=0)
    groups = r.tables["by_group"]
    assert set(groups["attribute"]) == {"sex", "race", "age"}
    ages = groups.loc[groups["attribute"] == "age", "group"].tolist()
    assert ages == [g for g in ("<25", "25-34", "35-44", "45-54", "55-64", ">=65") if g in ages]  # in bin order
    assert groups.groupby("attribute")["examples"].sum().eq(128).all()
    big = groups[groups["examples"] >= 10]
    gaps = big.groupby("attribute")["robust_accuracy"].agg(lambda a: a.max() - a.min())
    assert r.metrics["robustness.group_gap"] == pytest.approx(gaps.max())
    changed = r.tables["examples"]["feature"]
    assert not changed.str.contains("=").any()  # one-hot columns are never perturbed
    # Values mapped back to data units are rounded at 1/1000 of the column's SD: a 0 reads 0, not -1.3e-05.
    values = r.tables["examples"][["original", "adversarial"]].to_numpy()
    assert ((values == 0) | (np.abs(values) >= 1e-3)).all() and (values == 0).any()


def test_groups_are_the_fairness_analyzers_groups():
    sensitive = pd.DataFrame({"age": [17, 24, 25, 34, 35, 44, 45, 54, 55, 64, 65, 90, 30, 31, 33],
                              "race": list("xyxyxyxyxyxyxyx")})
    table = group_table(sensitive, np.ones(15, dtype=bool), None)
    expected = group_labels(sensitive)
    for attribute in ("age", "race"):
        assert table[table["attribute"] == attribute]["group"].tolist() == list(expected[attribute].cat.categories)
    assert table[table["attribute"] == "age"]["group"].tolist() == ["<25", "25-34", "35-44", "45-54", "55-64", ">=65"]


def test_bad_configuration_is_one_clear_error():
    with pytest.raises(AuditInputError, match="norm"):
        Robustness(norm="l3")
    with pytest.raises(AuditInputError, match="epsilon"):
        Robustness(epsilon=-1.0)
