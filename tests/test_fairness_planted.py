"""Planted bias: a model whose label depends on the sensitive attribute shows it, with an interval
clear of 0; a control does not. The reference models show the disparities their data are known for."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pandas as pd

import audit
from audit.analyzers.fairness.analyzer import Fairness
from audit.methods.fairness.preview import MITIGATION_TABLE
from audit.models.training import TrainConfig, train

QUICK = dict(intersections=1, mitigation=False)


def group_table(*, planted: bool, n: int, seed: int) -> audit.Dataset:
    """Four features and a group a/b. Planted: group b is far likelier to be labelled yes; control: the
    label depends on the features alone."""
    rng = np.random.default_rng(seed)
    group = rng.choice(["a", "b"], n)
    x = rng.normal(size=(n, 4))
    score = x[:, 0] + 0.5 * x[:, 1] + rng.normal(scale=0.5, size=n)
    if planted:
        score = score + 2.0 * (group == "b") - 1.0
    frame = pd.DataFrame(x, columns=[f"x{i}" for i in range(4)])
    frame = frame.assign(group=group, label=np.where(score > 0, "yes", "no"))
    return audit.Dataset.from_dataframe(frame, target="label", sensitive=["group"], name="planted groups")


@lru_cache(maxsize=None)
def trained(planted: bool):
    parts = group_table(planted=planted, n=3000, seed=0).split([0.7, 0.15, 0.15], seed=0)
    config = TrainConfig(epochs=8, patience=8, lr=0.005, include_sensitive=True)
    model = train("mlp", *parts, config=config, model_config={"hidden": (16,)}, quiet=True).model
    return model, group_table(planted=planted, n=3000, seed=1)  # fresh held-out rows to audit


def test_planted_group_bias_shows_a_disparity_whose_interval_excludes_zero():
    model, data = trained(True)
    result = Fairness(**QUICK).run(model, data, seed=0)
    for metric in ("demographic_parity_difference", "equalized_odds_difference"):
        low, high = result.intervals[f"fairness.group.{metric}"]
        assert low > 0.1, (metric, low, high)
    assert result.intervals["fairness.group.demographic_parity_ratio"][1] < 0.8
    assert result.metrics["fairness.demographic_parity_difference"] == result.metrics[
        "fairness.group.demographic_parity_difference"]


def test_control_without_group_dependence_shows_an_interval_that_contains_zero():
    model, data = trained(False)
    result = Fairness(**QUICK).run(model, data, seed=0)
    for metric in ("demographic_parity_difference", "equal_opportunity_difference", "accuracy_difference"):
        low, high = result.intervals[f"fairness.group.{metric}"]
        assert low == 0.0 < high < 0.1, (metric, low, high)
    assert result.intervals["fairness.group.demographic_parity_ratio"][1] == 1.0


def test_mitigation_preview_narrows_the_planted_gap_and_says_it_is_a_preview():
    model, data = trained(True)
    result = Fairness(intersections=1).run(model, data, seed=0)
    preview = result.tables[MITIGATION_TABLE].set_index("post_processing")
    before = preview.loc["none (the model as it is)", "demographic_parity_difference"]
    after = preview.loc["demographic_parity", "demographic_parity_difference"]
    assert before > 0.3 and after < before / 3
    assert preview.loc["none (the model as it is)", "rows"] == 1500
    assert "PREVIEW" in result.details["mitigation_preview"]


def test_adult_mlp_shows_the_known_sex_gap(adult_mlp):
    data = audit.load_dataset("adult", "test")
    result = Fairness(intersections=1, mitigation=False).run(adult_mlp, data, seed=0)
    low, high = result.intervals["fairness.sex.demographic_parity_difference"]
    assert 0.08 < low <= result.metrics["fairness.sex.demographic_parity_difference"] <= high
    groups = result.tables["groups"].query("feature == 'sex'").set_index("group")
    assert groups.loc["Male", "selection_rate"] > 2 * groups.loc["Female", "selection_rate"]
    assert set(result.details["groups_used"]["age"]) == {"<25", "25-34", "35-44", "45-54", "55-64", ">=65"}


def test_compas_mlp_shows_the_known_race_gap(compas_mlp):
    data = audit.load_dataset("compas", "test")
    result = Fairness(intersections=1, mitigation=False).run(compas_mlp, data, seed=0)
    low, _ = result.intervals["fairness.race.demographic_parity_difference"]
    assert low > 0.05
    groups = result.tables["groups"].query("feature == 'race'").set_index("group")
    assert groups.loc["African-American", "selection_rate"] > groups.loc["Caucasian", "selection_rate"] + 0.1
    assert groups.loc["African-American", "fpr"] > groups.loc["Caucasian", "fpr"]
    assert any(w.startswith("race:") for w in result.warnings)  # the few Asian and Native American rows
