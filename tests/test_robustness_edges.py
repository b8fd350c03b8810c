"""Edge cases of the robustness analyzer: no group gap to report, non-square images, 0/1 columns."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import torch
from torch import nn

import audit
from audit.analyzers.robustness.analyzer import Robustness
from audit.methods.robustness.attacks import pgd
from audit.methods.robustness.domain import input_domain


def test_group_gap_is_undefined_when_there_is_one_group_and_fails_its_gate(compas_mlp):
    data = audit.load_dataset("compas", "test")
    men = data.subset(np.flatnonzero(data.sensitive["sex"].to_numpy() == "Male"))
    men = dataclasses.replace(men, sensitive=men.sensitive[["sex"]])
    result = Robustness(samples=64).run(compas_mlp, men, seed=0)
    assert np.isnan(result.metrics["robustness.group_gap"])
    assert any("group_gap is undefined" in w for w in result.warnings)
    # The data made the gap degenerate: a failed gate, never a made-up 0 and never n/a under if_applicable.
    for gate in ({"max": 0.05}, {"max": 0.05, "if_applicable": True}):
        policy = audit.Policy.from_dict({"gates": {"robustness.group_gap": gate}})
        run = audit.run(compas_mlp, men, analyzers=[Robustness(samples=64)], policy=policy)
        assert run.verdict.exit_code == 1


def test_non_square_images_are_attacked():
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    x = rng.random((40, 1, 4, 32)).astype(np.float32)
    y = (x[:, 0, :, :16].mean(axis=(1, 2)) > x[:, 0, :, 16:].mean(axis=(1, 2))).astype(int)
    data = audit.Dataset.from_arrays(x, y)
    model = audit.wrap(nn.Sequential(nn.Flatten(), nn.Linear(128, 2)), modality="image", classes=data.classes)
    result = Robustness(samples=40).run(model, data, seed=0)
    assert result.status == "ok" and "robustness.pgd_accuracy" in result.metrics


def test_wrapped_table_never_moves_its_0_1_columns():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"income": rng.normal(size=60), "is_married": rng.integers(0, 2, 60).astype(float)})
    data = audit.Dataset.from_arrays(frame.to_numpy(), rng.integers(0, 2, 60), feature_names=list(frame.columns))
    torch.manual_seed(0)
    model = audit.wrap(nn.Linear(2, 2), modality="tabular", classes=data.classes)
    x, labels = model.encode(data), torch.from_numpy(model.labels(data))
    adv = pgd(model, x, labels, 0.5, input_domain(model, data, x))
    assert torch.equal(adv[:, 1], x[:, 1])
    assert not torch.equal(adv[:, 0], x[:, 0])
