"""SHAP's explainer chosen before the work: where DeepExplainer's values do not add up to the model's output (a
layer it has no rule for), the run gives up on it at the first class it explains, the one with the fewest
examples, instead of explaining every class and throwing the values away; the plan's pilot finds the same on a
few of the probe's rows, so the plan prices the fallback."""

from __future__ import annotations

import numpy as np
import torch
from pass_counter import counting
from torch import nn

import audit
from audit.analyzers.shap_values.analyzer import Shap
from audit.executor.plan import probe
from audit.methods.attributions.shap_method import DEFAULT_GRADIENT_SAMPLES

NAMES = ["a", "b", "c", "d"]
BACKGROUND = 10


def three_class(activation: nn.Module) -> tuple[audit.Model, audit.Dataset]:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 16), activation, nn.Linear(16, 3))
    model = audit.wrap(net, modality="tabular", classes=["x", "y", "z"], feature_names=NAMES)
    x = np.random.default_rng(0).normal(size=(80, 4))
    y = net(torch.from_numpy(x).float()).argmax(1).numpy()  # the model right on every row
    return model, audit.Dataset.from_arrays(x, y, feature_names=NAMES, classes=model.classes)


def test_deep_explainer_is_given_up_at_the_first_class_whose_values_do_not_add_up():
    model, data = three_class(nn.SiLU())  # DeepExplainer has no rule for SiLU
    model.predict_proba(data)
    analyzer = Shap(samples=12, background=BACKGROUND)
    with counting(model.module) as passes:
        result = analyzer.run(model, data, seed=0)
    assert result.details["explainer"] == "GradientExplainer"
    explained = np.bincount(result.arrays["target"], minlength=3)
    fewest = explained[explained > 0].min()
    assert explained.max() > fewest  # the classes differ in size: which went first shows in the passes
    assert passes.backward == 2 * BACKGROUND * fewest + 12 * DEFAULT_GRADIENT_SAMPLES


def test_the_pilot_names_the_explainer_the_run_uses_and_the_plan_prices_it():
    costs = {}
    for activation in (nn.ReLU(), nn.SiLU()):
        model, data = three_class(activation)
        analyzer = Shap(samples=12, background=BACKGROUND)
        probed = probe(model, data, [analyzer]).probed
        assert probed.pilots["shap"] == analyzer.run(model, data, seed=0).details["explainer"]
        costs[probed.pilots["shap"]] = analyzer.cost(model, len(data), probed=probed).backward
    assert costs["GradientExplainer"] > costs["DeepExplainer"]
