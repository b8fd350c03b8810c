"""Fairness numbers against fairlearn called directly, groups and config."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch
from fairlearn.metrics import (MetricFrame, demographic_parity_difference, demographic_parity_ratio,
                               equal_opportunity_difference, equalized_odds_difference, equalized_odds_ratio,
                               false_negative_rate, false_positive_rate, selection_rate, true_positive_rate)
from sklearn.metrics import accuracy_score, precision_score

import audit
from audit.analyzers.fairness.analyzer import Fairness
from audit.methods.fairness.preview import MITIGATION_TABLE
from audit._util.errors import AuditInputError
from audit.core.groups import group_labels, natural_order
from audit.methods.fairness.metrics import disparities_from_cells
from audit.policy.gates import Policy, find_metric_spec

FAIRLEARN = {
    "demographic_parity_difference": demographic_parity_difference,
    "demographic_parity_ratio": demographic_parity_ratio,
    "equalized_odds_difference": equalized_odds_difference,
    "equalized_odds_ratio": equalized_odds_ratio,
    "equal_opportunity_difference": equal_opportunity_difference,
    "accuracy_difference": lambda y, p, sensitive_features: MetricFrame(
        metrics=accuracy_score, y_true=y, y_pred=p, sensitive_features=sensitive_features).difference(),
}


class Scorer(torch.nn.Module):
    """Fixed linear scores: the logit of class k is w_k . x."""

    def __init__(self, weights):
        super().__init__()
        self.linear = torch.nn.Linear(len(weights[0]), len(weights), bias=False)
        with torch.no_grad():
            self.linear.weight.copy_(torch.tensor(weights, dtype=torch.float32))

    def forward(self, x):
        return self.linear(x)


def table(n=3000, seed=0, classes=2):
    """Two features, a label that leans on them, and sensitive sex, race (one tiny group) and age."""
    rng = np.random.default_rng(seed)
    sex = rng.choice(["F", "M"], n)
    race = rng.choice(["A", "B", "C"], n, p=[0.6, 0.3, 0.1]).astype(object)
    race[:12] = "tiny"
    x0 = rng.normal(size=n) + 0.6 * (sex == "M")
    x1 = rng.normal(size=n)
    if classes == 2:
        label = np.where(x0 + 0.5 * x1 + rng.normal(scale=0.8, size=n) > 0.4, "yes", "no")
    else:
        label = np.array(["p", "q", "r"])[np.digitize(x0 + rng.normal(scale=0.5, size=n), [-0.3, 0.7])]
    frame = pd.DataFrame({"x0": x0, "x1": x1, "sex": sex, "race": race,
                          "age": rng.integers(17, 80, n), "label": label})
    return audit.Dataset.from_dataframe(frame, target="label", sensitive=["sex", "race", "age"], name="synthetic")


def scorer_model(data, weights=((0.0, 0.0), (1.0, 0.5))):
    return audit.wrap(Scorer(weights), modality="tabular", classes=data.classes, feature_names=["x0", "x1"])


@pytest.fixture(scope="module")
def binary():
    data = table(n=1500)
    model = scorer_model(data)
    return model, data, Fairness().run(model, data, seed=0)


def test_group_table_equals_metricframe(binary):
    model, data, result = binary
    y, pred = model.labels(data), model.predict(data)
    groups = pd.concat([result.tables["groups"], result.tables["intersectional_groups"]])
    for feature in ("sex", "race", "age", "sex&race"):
        column = groups_of(data, feature)
        frame = MetricFrame(
            metrics={"selection_rate": selection_rate, "accuracy": accuracy_score, "tpr": true_positive_rate,
                     "fpr": false_positive_rate, "fnr": false_negative_rate,
                     "precision": lambda a, b: precision_score(a, b, zero_division=0)},
            y_true=y, y_pred=pred, sensitive_features=column)
        ours = groups[groups["feature"] == feature].set_index("group")
        expected = frame.by_group
        assert sorted(ours.index) == sorted(expected.index)
        for metric in expected.columns:
            np.testing.assert_allclose(ours.loc[expected.index, metric], expected[metric], rtol=0, atol=1e-9)
        counts = column.value_counts()
        np.testing.assert_array_equal(ours.loc[counts.index, "count"], counts.to_numpy())
        np.testing.assert_allclose(ours.loc[counts.index, "base_rate"],
                                   pd.Series(y).groupby(column.to_numpy()).mean().loc[counts.index], atol=1e-12)
        score = model.predict_proba(data)[:, 1]
        for group in counts.index:  # calibration row by row, against the table's merged rows
            rows = (column == group).to_numpy()
            gap = pd.Series(y[rows] - score[rows]).groupby(np.clip((score[rows] * 10).astype(int), 0, 9)).sum()
            assert ours.loc[group, "calibration_error"] == pytest.approx(gap.abs().sum() / rows.sum(), abs=1e-9)


def groups_of(data, feature, bins=None):
    labels = group_labels(data.sensitive, bins)
    if "&" in feature:
        a, b = feature.split("&")
        return pd.Series(labels[a].astype(str) + " & " + labels[b].astype(str), name=feature)
    return pd.Series(labels[feature].astype(str), name=feature)


def test_every_disparity_equals_fairlearn_on_the_groups_it_uses(binary):
    model, data, result = binary
    y, pred = model.labels(data), model.predict(data)
    checked = 0
    for feature in ("sex", "race", "age", "sex&race", "race&age", "sex&age"):
        column = groups_of(data, feature)
        used = result.details["groups_used"][feature]
        keep = column.isin(used).to_numpy()
        for metric, function in FAIRLEARN.items():
            expected = function(y[keep], pred[keep], sensitive_features=column[keep])
            assert result.metrics[f"fairness.{feature}.{metric}"] == pytest.approx(expected, abs=1e-9)
            checked += 1
    assert checked == 36


def test_small_groups_are_flagged_left_out_and_named_in_a_warning(binary):
    model, data, result = binary
    groups = result.tables["groups"]
    tiny = groups[(groups["feature"] == "race") & (groups["group"] == "tiny")].iloc[0]
    assert tiny["count"] == 12 and tiny["small"]
    assert "tiny" not in result.details["groups_used"]["race"]
    assert any(w.startswith("race:") and "'tiny'" in w for w in result.warnings)
    # with the tiny group counted, fairlearn's number differs: the exclusion is what we report
    y, pred = model.labels(data), model.predict(data)
    everything = demographic_parity_difference(y, pred, sensitive_features=groups_of(data, "race"))
    assert everything != pytest.approx(result.metrics["fairness.race.demographic_parity_difference"], abs=1e-6)


def test_unqualified_metric_is_worst_case_over_single_features(binary):
    _, _, result = binary
    for metric, worse in (("demographic_parity_difference", max), ("equalized_odds_ratio", min)):
        per_feature = [result.metrics[f"fairness.{f}.{metric}"] for f in ("sex", "race", "age")]
        assert result.metrics[f"fairness.{metric}"] == worse(per_feature)
    for name, (low, high) in result.intervals.items():
        assert 0 <= low <= result.metrics[name] <= high <= 1, name


def test_age_is_bucketed_by_default_bins_and_bins_can_be_overridden():
    data = table(n=400)
    default = group_labels(data.sensitive)["age"]
    assert set(default) == {"<25", "25-34", "35-44", "45-54", "55-64", ">=65"}
    ages = data.sensitive["age"].to_numpy()
    assert (default[ages < 25] == "<25").all() and (default[ages >= 65] == ">=65").all()
    assert (default[(ages >= 35) & (ages < 45)] == "35-44").all()
    custom = Fairness(bins={"age": (40,)}, mitigation=False, intersections=1).run(
        scorer_model(data), data)
    assert set(custom.tables["groups"].query("feature == 'age'")["group"]) == {"<40", ">=40"}


def test_groups_are_listed_in_natural_order_not_by_size_or_as_strings():
    # Groups given already binned or numbered, the largest last: tables and figures list them as a reader counts.
    ages = ["45-54"] * 50 + [">=65"] * 40 + ["25-34"] * 30 + ["<25"] * 20 + ["35-44"] * 10
    sizes = ["10"] * 30 + ["2"] * 20 + ["1"] * 10 + ["100"] * 5
    labels = group_labels(pd.DataFrame({"age": ages, "size": sizes + ["2"] * (len(ages) - len(sizes))}))
    assert list(labels["age"].cat.categories) == ["<25", "25-34", "35-44", "45-54", ">=65"]
    assert list(labels["size"].cat.categories) == ["1", "2", "10", "100"]
    assert natural_order(["Male", "Female", "unknown"]) == ["Female", "Male", "unknown"]
    assert natural_order(["group 10", "group 9", "<0.5", "-1"]) == ["-1", "<0.5", "group 9", "group 10"]


def test_observed_cells_give_fairlearn_numbers_including_empty_rates():
    # group "b" has no positive labels (its TPR is 0 by sklearn's convention) and "c" selects nobody
    y = np.array([1, 0, 1, 0, 0, 0, 1, 1, 0])
    p = np.array([1, 0, 0, 1, 0, 1, 0, 0, 0])
    g = np.array(["a", "a", "a", "a", "b", "b", "c", "c", "c"])
    c = np.zeros((1, 3, 4))
    for yi, pi, gi in zip(y, p, np.unique(g, return_inverse=True)[1]):
        c[0, gi, 2 * yi + pi] += 1
    values = disparities_from_cells(c)
    for metric, function in FAIRLEARN.items():
        assert values[metric][0] == pytest.approx(function(y, p, sensitive_features=g), abs=1e-12, nan_ok=True)


def test_multiclass_one_vs_rest_takes_the_worst_class_and_positive_class_picks_one():
    data = table(n=600, classes=3)
    model = scorer_model(data, weights=((-1.0, 0.0), (0.0, 0.0), (1.0, 0.0)))
    y, pred = model.labels(data), model.predict(data)
    sex = groups_of(data, "sex")
    result = Fairness(intersections=1, bins={"age": (40,)}).run(model, data)
    per_class = [demographic_parity_difference((y == k).astype(int), (pred == k).astype(int),
                                               sensitive_features=sex) for k in range(3)]
    assert result.metrics["fairness.sex.demographic_parity_difference"] == pytest.approx(max(per_class), abs=1e-9)
    assert set(result.tables["groups"]["class"]) == {"p", "q", "r"}
    assert MITIGATION_TABLE not in result.tables
    one = Fairness(intersections=1, bins={"age": (40,)}, positive_class="q").run(model, data)
    assert one.metrics["fairness.sex.demographic_parity_difference"] == pytest.approx(per_class[1], abs=1e-9)
    assert MITIGATION_TABLE in one.tables


def test_same_seed_same_numbers_and_json_round_trip(binary):
    model, data, result = binary
    quick = Fairness(intersections=1, mitigation=False)
    again, other = quick.run(model, data, seed=0), quick.run(model, data, seed=1)
    single = {k: v for k, v in result.intervals.items() if "&" not in k}
    assert again.metrics == {k: v for k, v in result.metrics.items() if "&" not in k}
    assert again.intervals == single and other.intervals == single  # score intervals: no resampling
    assert json.loads(json.dumps(result.to_dict(), allow_nan=False))["analyzer"] == "fairness"


def test_metric_names_are_gateable_and_the_upper_bound_gate_reads_the_interval(binary):
    model, data, _ = binary
    for name in ("fairness.demographic_parity_difference", "fairness.sex.equalized_odds_ratio",
                 "fairness.sex&race.accuracy_difference", "fairness.counterfactual_flip_rate"):
        assert find_metric_spec(name) is not None, name
    run = audit.run(model, data, ["fairness"],
                    options={"fairness": {"intersections": 1, "mitigation": False}})
    low, high = run.intervals["fairness.sex.demographic_parity_difference"]
    value = run.metrics["fairness.sex.demographic_parity_difference"]
    limit = (value + high) / 2
    assert high > limit > value
    gates = {"gates": {"fairness.sex.demographic_parity_difference": {"max": limit, "use": "upper"}}}
    assert Policy.from_dict(gates).evaluate(run).status == "fail"
    gates["gates"]["fairness.sex.demographic_parity_difference"]["use"] = "value"
    assert Policy.from_dict(gates).evaluate(run).status == "pass"


def test_bad_configuration_is_one_clear_error():
    data = table(n=200)
    model = scorer_model(data)
    with pytest.raises(AuditInputError, match="positive_class 'maybe'"):
        Fairness(positive_class="maybe").run(model, data)
    with pytest.raises(AuditInputError, match="not sensitive columns"):
        Fairness(bins={"income": (1, 2)}).run(model, data)
    with pytest.raises(AuditInputError, match="min_group_size"):
        Fairness(min_group_size=0).run(model, data)


def test_skipped_without_sensitive_attributes_for_non_text_models():
    data = table(n=200)
    plain = audit.Dataset(data.inputs, data.labels, data.classes, "tabular")
    assert not Fairness().supports(scorer_model(data), plain)
    assert Fairness().supports(scorer_model(data), data)


def test_a_feature_with_a_single_large_group_gives_a_warning_not_a_number():
    data = table(n=300)
    sensitive = data.sensitive.assign(site="north")
    data = audit.Dataset(data.inputs, data.labels, data.classes, "tabular", sensitive=sensitive[["site", "sex"]])
    result = Fairness(mitigation=False).run(scorer_model(data), data)
    assert any(w.startswith("site: fewer than two groups") for w in result.warnings)
    assert math.isnan(result.metrics["fairness.site.demographic_parity_difference"])  # undefined: a gate fails
    assert result.metrics["fairness.demographic_parity_difference"] == result.metrics[
        "fairness.sex.demographic_parity_difference"]
