"""Fairness-aware and adversarial training: each method removes the effect planted in small, fast variants."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from planted import sex_carrying_table
from torch import nn

import audit
from audit.cli import main
from audit._util.errors import AuditInputError
from audit.methods.robustness.attacks import pgd
from audit.methods.robustness.domain import input_domain
from audit.mitigation.adversarial_training import PGDTraining
from audit.mitigation.retrain import training_hook
from audit.models.adversarial_training import AdversarialTraining
from audit.models.fair_training import AdversarialDebiasing, Lagrangian, Mitigation, Reweighing
from audit.models.spec import ModelSpec
from audit.models.training import TrainConfig, train

ROOT = Path(__file__).resolve().parents[1]
CONFIG = TrainConfig(epochs=4, patience=4, batch_size=128, include_sensitive=True)


@pytest.fixture(scope="module")
def biased():
    """adult-mlp-biased's splits (women's positive labels planted away in train and validation), subsampled."""
    train_data, validation, test = ModelSpec.from_toml(ROOT / "models" / "adult-mlp-biased.toml").splits(seed=0)
    return train_data.sample(4000, seed=0), validation.sample(1000, seed=0), test.sample(3000, seed=0)


def gaps(model, data) -> tuple[float, float]:
    """Demographic parity and equalized odds differences by sex."""
    pred, y = model.predict(data), data.labels
    sex = data.sensitive["sex"].astype(str).to_numpy()
    rate = lambda rows: [pred[rows & (sex == g)].mean() for g in ("Female", "Male")]  # noqa: E731
    dp = abs(np.subtract(*rate(np.ones_like(y, dtype=bool))))
    eo = max(abs(np.subtract(*rate(y == 1))), abs(np.subtract(*rate(y == 0))))
    return dp, eo


@pytest.fixture(scope="module")
def plain_gaps(biased):
    return gaps(train("mlp", *biased, config=CONFIG, quiet=True).model, biased[2])


@pytest.mark.parametrize("method, constraint, strength", [
    ("reweighing", "demographic_parity", 1.0),
    ("lagrangian", "demographic_parity", 1.0),
    ("adversarial_debiasing", "demographic_parity", 1.0),
    ("adversarial_debiasing", "equalized_odds", 1.0),
])
def test_fair_training_removes_the_planted_gap(biased, plain_gaps, method, constraint, strength):
    mitigation = Mitigation(method=method, sensitive="sex", constraint=constraint, strength=strength)
    outcome = train("mlp", *biased, config=CONFIG, hook=mitigation, quiet=True)
    dp, eo = gaps(outcome.model, biased[2])
    index = 0 if constraint == "demographic_parity" else 1
    assert plain_gaps[index] > 0.2  # planted: the biased labels teach the model to pass over women
    assert (dp, eo)[index] < 0.7 * plain_gaps[index]
    assert outcome.model.task.training["mitigation"]["method"] == method


def test_reweighing_makes_label_and_group_independent():
    groups = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1, 1, 1])
    labels = torch.tensor([1, 1, 1, 0, 1, 0, 0, 0, 0, 0])
    w = Reweighing(groups, labels).weights
    joint = torch.zeros(2, 2).index_put_((groups, labels), w, accumulate=True) / w.sum()
    assert torch.allclose(joint, joint.sum(1, keepdim=True) * joint.sum(0, keepdim=True))
    assert torch.isclose(w.sum(), torch.tensor(10.0))  # the data keep their total weight


def test_lagrangian_penalty_is_the_constraint_violation():
    logits = torch.tensor([[0.0, 2.0], [0.0, -2.0], [0.0, 1.0], [0.0, -1.0]])
    y = torch.tensor([1, 0, 1, 0])
    groups = torch.tensor([0, 0, 1, 1])
    rows = torch.arange(4)
    base = F.cross_entropy(logits, y)
    assert torch.isclose(Lagrangian(groups, "demographic_parity", 0.0, 1).loss(logits, y, rows), base)
    p = torch.sigmoid(logits[:, 1])
    violation = (p[:2].mean() - p.mean()).abs() + (p[2:].mean() - p.mean()).abs()  # 0: equal means
    assert torch.isclose(Lagrangian(groups, "demographic_parity", 2.0, 1).loss(logits, y, rows), base + 2 * violation)
    eo = sum((p[[g]].mean() - p[y == label].mean()).abs() for label, g in ((1, 0), (1, 2), (0, 1), (0, 3)))
    assert torch.isclose(Lagrangian(groups, "equalized_odds", 2.0, 1).loss(logits, y, rows), base + 2 * eo)


def test_adversarial_debiasing_steps_orthogonally_to_the_adversary():
    torch.manual_seed(0)
    module = nn.Sequential(nn.Linear(3, 2))
    x, y = torch.randn(32, 3), torch.randint(0, 2, (32,))
    groups = torch.randint(0, 2, (32,))
    step = AdversarialDebiasing(module, groups, "demographic_parity", 0.0, 1, seed=0)
    logits = module(x)
    own = torch.autograd.grad(F.cross_entropy(logits, y), list(module.parameters()), retain_graph=True)
    adversary_loss = F.cross_entropy(step.adversary(step._adversary_input(logits, y)), groups)
    against = torch.autograd.grad(adversary_loss, list(module.parameters()))
    step(module, torch.optim.SGD(module.parameters(), lr=0.0), x, y, torch.arange(32))
    for p, g_p, g_a in zip(module.parameters(), own, against):
        # float error scales with the gradient before the projection: with two classes the bias's two
        # gradients are parallel, and what is left of it after the projection is that error alone
        assert abs(float((p.grad * g_a).sum())) < 1e-6 * float(g_a.norm() * g_p.norm())


def test_sensitive_column_is_not_an_input_unless_the_training_says_so(biased):
    mitigation = Mitigation(method="reweighing", sensitive="sex")
    small = [d.sample(500, seed=0) for d in biased]
    config = TrainConfig(epochs=1, patience=1)
    model = train("mlp", *small, config=config, hook=mitigation, quiet=True).model
    assert not any(name.startswith("sex") for name in model.feature_names())
    with pytest.raises(AuditInputError, match="no sensitive column 'income'"):
        train("mlp", *small, config=config, hook=Mitigation(method="reweighing", sensitive="income"), quiet=True)


def test_adversarial_training_raises_pgd_accuracy():
    data, validation, test = (audit.load_dataset("digits", split) for split in ("train", "validation", "test"))
    config = TrainConfig(epochs=8, patience=8, lr=0.003, batch_size=64)
    hardened = PGDTraining(AdversarialTraining(steps=3, share=1.0))
    accuracy = {}
    for name, hook in (("plain", None), ("pgd", hardened)):
        model = train("cnn", data, validation, test, config=config, model_config={"channels": [8, 16], "hidden": 32},
                      hook=hook, quiet=True).model
        x, y = model.encode(test), torch.from_numpy(model.labels(test))
        epsilon = 0.1 * (model.encoder.high - model.encoder.low)
        adv = pgd(model, x, y, epsilon, input_domain(model, test, x))
        accuracy[name] = float((model.logits(adv).argmax(1) == y).float().mean())
    assert model.task.training["adversarial"]["epsilon"] > 0
    assert accuracy["pgd"] > accuracy["plain"] + 0.15


def test_spec_tables_and_train_flags_are_checked(tmp_path, capsys):
    for name in ("adult-mlp-reweighed", "adult-mlp-lagrangian", "adult-mlp-adversarial-debiasing"):
        assert ModelSpec.from_toml(ROOT / "models" / f"{name}.toml").mitigation.sensitive == "sex"
    assert ModelSpec.from_toml(ROOT / "models" / "digits-cnn-pgd.toml").adversarial.attack == "pgd"
    spec = tmp_path / "bad.toml"
    spec.write_text('architecture = "mlp"\ndataset = "adult"\n[mitigation]\nmethod = "luck"\nsensitive = "sex"\n')
    with pytest.raises(AuditInputError, match="mitigation method must be one of"):
        ModelSpec.from_toml(spec)
    frame = pd.DataFrame({"x": np.arange(40.0), "sex": ["F", "M"] * 20, "y": ["a", "b", "b", "a"] * 10})
    frame.to_csv(tmp_path / "d.csv", index=False)
    base = ["train", "mlp", "--data", str(tmp_path / "d.csv"), "--target", "y", "--epochs", "1", "--quiet",
            "-o", str(tmp_path / "m.pt")]
    assert main([*base, "--mitigate", "reweighing"]) == 2
    assert "--mitigate needs the one sensitive column" in capsys.readouterr().err
    assert main([*base, "--strength", "2"]) == 2
    assert main([*base, "--sensitive", "sex", "--mitigate", "lagrangian", "--constraint", "equalized_odds"]) == 0
    assert audit.load_model(tmp_path / "m.pt").task.training["mitigation"]["constraint"] == "equalized_odds"


def test_training_takes_one_hook(tmp_path, capsys):
    fair, hardened = Mitigation(method="reweighing", sensitive="sex"), AdversarialTraining(steps=1)
    assert training_hook(fair, None) is fair and training_hook(None, hardened) == PGDTraining(hardened)
    assert training_hook(None, None) is None
    frame = pd.DataFrame({"x": np.arange(40.0), "sex": ["F", "M"] * 20, "y": ["a", "b", "b", "a"] * 10})
    frame.to_csv(tmp_path / "d.csv", index=False)
    argv = ["train", "mlp", "--data", str(tmp_path / "d.csv"), "--target", "y", "--sensitive", "sex", "--epochs", "1",
            "--quiet", "-o", str(tmp_path / "m.pt"), "--mitigate", "reweighing"]
    assert main([*argv, "--adversarial", "pgd"]) == 2
    assert "train with one of a fairness mitigation and adversarial training, not both" in capsys.readouterr().err
    assert not (tmp_path / "m.pt").exists()
    assert main(argv) == 0


def test_mitigate_retrains_as_recorded_and_compares(tmp_path, capsys):
    sex_carrying_table(tmp_path / "d.csv", 300)
    assert main(["train", "mlp", "--data", str(tmp_path / "d.csv"), "--target", "y", "--sensitive", "sex",
                 "--epochs", "3", "--quiet", "-o", str(tmp_path / "m.pt")]) == 0
    argv = ["mitigate", str(tmp_path / "m.pt"), "--method", "lagrangian", "--sensitive", "sex", "--strength", "3",
            "-o", str(tmp_path / "f.pt"), "--analyzers", "performance,fairness", "--report", str(tmp_path / "c.html"),
            "--json", str(tmp_path / "c.json"), "--quiet"]
    assert main(argv) == 0
    assert "retrained with lagrangian" in capsys.readouterr().out
    fixed = audit.load_model(tmp_path / "f.pt")
    assert fixed.task.training["mitigation"]["strength"] == 3
    assert fixed.task.training["epochs"] == 3  # the recorded training options, the recorded data
    doc = json.loads((tmp_path / "c.json").read_text())
    assert {r["metric"] for r in doc["changes"]} >= {"fairness.sex.demographic_parity_difference"}
    assert main([*argv[:-1], "--validation", str(tmp_path / "d.csv")]) == 2
