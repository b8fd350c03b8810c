"""What each fairness number compares: groups without enough positives are left out of the rates they
cannot carry; every disparity names its worse-off and better-off group, its direction and positive class."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from fairlearn.metrics import equal_opportunity_difference, equalized_odds_difference

import audit
from audit.analyzers.fairness.analyzer import Fairness
from audit.core.analyzer import judged
from audit.executor.compare import compare
from audit.policy.thresholds import DEFAULT_VALUES


class Threshold(torch.nn.Module):
    """Predicts class 1 when the first input is above 0: a model that ignores the group."""

    def forward(self, x):
        return torch.stack([-x[:, 0], x[:, 0]], dim=1) * 5


def data_with(frame: pd.DataFrame, sensitive=("group",)) -> audit.Dataset:
    return audit.Dataset.from_dataframe(frame, target="label", sensitive=list(sensitive), name="groups")


def fair_frame(n=600, seed=0, no_positives_in=None):
    """Label and prediction both follow x0 in every group; optionally one group has no positive labels."""
    rng = np.random.default_rng(seed)
    group = rng.choice(["a", "b", "c"], n)
    x0 = rng.normal(size=n)
    label = (x0 + rng.normal(scale=0.3, size=n) > 0).astype(int)
    if no_positives_in is not None:
        rows = group == no_positives_in
        x0[rows] = -np.abs(x0[rows]) - 0.5  # the group's rows are all predicted and labelled negative
        label[rows] = 0
    return pd.DataFrame({"x0": x0, "group": group, "label": np.array(["no", "yes"])[label]})


def model_for(data):
    return audit.wrap(Threshold(), modality="tabular", classes=data.classes, feature_names=["x0"])


def test_a_group_without_positives_is_flagged_named_and_left_out_of_tpr_disparities():
    frame = fair_frame(no_positives_in="c")
    data = data_with(frame)
    model = model_for(data)
    result = Fairness(intersections=1, mitigation=False).run(model, data)
    groups = result.tables["groups"].set_index("group")
    assert groups.loc["c", "few_positives"] and not groups.loc["a", "few_positives"]
    assert any(w.startswith("group:") and "'c'" in w and "true positive rate" in w for w in result.warnings)
    y, pred = model.labels(data), model.predict(data)
    everyone = equal_opportunity_difference(y, pred, sensitive_features=frame["group"])
    assert everyone > 0.8  # scored as a TPR of 0, the fair model would look grossly unfair
    keep = (frame["group"] != "c").to_numpy()
    assert result.metrics["fairness.group.equal_opportunity_difference"] == pytest.approx(
        equal_opportunity_difference(y[keep], pred[keep], sensitive_features=frame["group"][keep]), abs=1e-9)
    assert result.metrics["fairness.group.equalized_odds_difference"] == pytest.approx(
        equalized_odds_difference(y[keep], pred[keep], sensitive_features=frame["group"][keep]), abs=1e-9)
    assert result.intervals["fairness.group.equal_opportunity_difference"][0] == 0.0
    # demographic parity and accuracy still compare all three groups
    rows = result.tables["disparities"].set_index("metric")
    assert rows.loc["demographic_parity_difference", "groups_compared"] == 3
    assert rows.loc["equal_opportunity_difference", "groups_compared"] == 2


def test_without_the_planted_group_nothing_is_flagged():
    data = data_with(fair_frame())
    result = Fairness(intersections=1, mitigation=False).run(model_for(data), data)
    assert not result.tables["groups"]["few_positives"].any()
    assert not any("true positive rate" in w for w in result.warnings)


def test_min_positives_is_an_option_and_checked():
    frame = fair_frame(n=300)
    data = data_with(frame)
    result = Fairness(intersections=1, mitigation=False, min_positives=200).run(model_for(data), data)
    assert "fairness.group.equal_opportunity_difference" not in result.metrics
    assert "fairness.group.demographic_parity_difference" in result.metrics
    with pytest.raises(audit.AuditInputError, match="min_positives"):
        Fairness(min_positives=0)


def test_every_disparity_names_the_groups_it_compares_its_direction_and_positive_class():
    rng = np.random.default_rng(1)
    n = 2000
    group = rng.choice(["low", "high"], n)
    x0 = rng.normal(size=n) + 0.8 * (group == "high")  # group "high" is selected far more often
    frame = pd.DataFrame({"x0": x0, "group": group,
                          "label": np.where(x0 + rng.normal(scale=0.5, size=n) > 0.4, "yes", "no")})
    data = data_with(frame)
    result = Fairness(intersections=1, mitigation=False).run(model_for(data), data)
    compared = result.details["compared"]
    assert set(compared) == {name for name in result.metrics}
    dp = compared["fairness.group.demographic_parity_difference"]
    assert (dp["feature"], dp["worse_group"], dp["better_group"], dp["positive_class"]) == (
        "group", "low", "high", "yes")
    assert "selection rate" in dp["direction"] and "'low'" in dp["direction"] and "unsigned" in dp["direction"]
    assert compared["fairness.demographic_parity_difference"]["worse_group"] == "low"
    rows = result.tables["disparities"].set_index("metric")
    assert rows.loc["demographic_parity_ratio", "worse_group"] == "low"
    fpr = result.tables["groups"].set_index("group")["fpr"]
    eo = compared["fairness.group.equalized_odds_difference"]
    if eo["rate"] == "fpr":  # a higher false positive rate is the worse end
        assert eo["worse_group"] == fpr.idxmax()


def three_groups(n=3000, seed=2):
    rng = np.random.default_rng(seed)
    group = rng.choice(["a", "b", "c"], n, p=[0.5, 0.3, 0.2])
    x0 = rng.normal(size=n) + 0.5 * (group == "a") - 0.3 * (group == "c")
    label = np.where(x0 + rng.normal(scale=0.7, size=n) > 0.2, "yes", "no")
    return pd.DataFrame({"x0": x0, "group": group, "label": label})


def test_signed_metrics_equal_aif360_against_the_reference_group():
    from aif360.datasets import BinaryLabelDataset
    from aif360.metrics import ClassificationMetric

    frame = three_groups()
    data = data_with(frame)
    model = model_for(data)
    codes = {"a": 0, "b": 1, "c": 2}
    y, pred = model.labels(data), model.predict(data)
    truth = BinaryLabelDataset(df=pd.DataFrame({"g": frame["group"].map(codes), "y": y}), label_names=["y"],
                               protected_attribute_names=["g"], favorable_label=1, unfavorable_label=0)
    predicted = truth.copy()
    predicted.labels = pred.reshape(-1, 1).astype(float)
    for reference in (None, "b"):
        options = {"reference_group": {"group": reference}} if reference else {}
        result = Fairness(intersections=1, mitigation=False, **options).run(model, data)
        table = result.tables["signed_against_reference_(aif360_conventions)"].set_index("group")
        expected_reference = reference or "a"  # by default, the largest group
        assert result.details["reference_groups"]["group"] == expected_reference
        assert set(table.index) == set(codes) - {expected_reference}
        for group in table.index:
            metric = ClassificationMetric(truth, predicted, unprivileged_groups=[{"g": codes[group]}],
                                          privileged_groups=[{"g": codes[expected_reference]}])
            row = table.loc[group]
            assert row["statistical_parity_difference"] == pytest.approx(
                metric.statistical_parity_difference(), abs=1e-9)
            assert row["disparate_impact"] == pytest.approx(metric.disparate_impact(), abs=1e-9)
            assert row["average_odds_difference"] == pytest.approx(metric.average_odds_difference(), abs=1e-9)
            assert row["equal_opportunity_difference"] == pytest.approx(
                metric.equal_opportunity_difference(), abs=1e-9)
        if reference is None:  # b and c are selected less than a: negative, as in AIF360
            assert (table["statistical_parity_difference"] < 0).all()
    with pytest.raises(audit.AuditInputError, match="'z' is not a group of 'group'"):
        Fairness(reference_group={"group": "z"}).run(model, data)


def credit_frame(labels=("1", "2")):
    frame = three_groups()
    frame["label"] = np.where(frame["label"] == "yes", labels[1], labels[0])
    return frame


@pytest.mark.parametrize("labels, warns", [(("1", "2"), True), (("bad", "good"), True), (("0", "1"), False),
                                           (("no", "yes"), False), (("<=50K", ">50K"), False)])
def test_the_positive_class_is_stated_and_unclear_labels_warn(labels, warns):
    data = data_with(credit_frame(labels))
    model = model_for(data)
    analyzer = Fairness(intersections=1, mitigation=False)
    result = judged(analyzer, analyzer.run(model, data), DEFAULT_VALUES)
    assert result.details["positive_classes"] == [labels[1]]
    assert result.summary.assumed_positive == (labels[1] if warns else None)
    stated = [f for f in result.findings if "is assumed to be" in f.sentence]
    assert bool(stated) == warns
    if warns:  # a medium finding, so the command line's first screen shows it
        assert stated[0].severity == "medium" and repr(labels[1]) in stated[0].sentence
        assert f"--positive-class {labels[0]}" in stated[0].next
    named = Fairness(intersections=1, mitigation=False, positive_class=labels[0])
    chosen = judged(named, named.run(model, data), DEFAULT_VALUES)
    assert chosen.details["positive_classes"] == [labels[0]]
    assert chosen.summary.assumed_positive is None
    assert not any("is assumed to be" in f.sentence for f in chosen.findings)
    assert chosen.details["compared"]["fairness.group.demographic_parity_difference"]["positive_class"] == labels[0]


def test_german_credit_like_labels_warn_on_the_command_line_and_positive_class_sets_it(capsys, tmp_path):
    from audit.cli import main

    frame = credit_frame(("1", "2"))
    frame["label"] = frame["label"].astype(int)  # German credit: 1 good, 2 bad
    csv = tmp_path / "credit.csv"
    frame.rename(columns={"label": "credit"}).to_csv(csv, index=False)
    model = tmp_path / "credit.pt"
    assert main(["train", "mlp", "--data", str(csv), "--target", "credit", "--sensitive", "group", "--epochs", "1",
                 "-o", str(model), "--quiet"]) == 0
    common = ["report", str(model), "--data", str(csv), "--target", "credit", "--sensitive", "group",
              "--analyzers", "fairness", "--set", "fairness.mitigation=false", "--quiet"]
    capsys.readouterr()
    assert main([*common, "-o", str(tmp_path / "a.html"), "--json", str(tmp_path / "a.json")]) == 0
    assert "medium: The positive (favourable) class is assumed to be '2'" in capsys.readouterr().out  # first screen
    import json

    first = json.loads((tmp_path / "a.json").read_text())["results"]["fairness"]
    assert any("is assumed to be '2'" in f["sentence"] for f in first["findings"])
    assert main([*common, "--positive-class", "1", "-o", str(tmp_path / "b.html"),
                 "--json", str(tmp_path / "b.json")]) == 0
    second = json.loads((tmp_path / "b.json").read_text())["results"]["fairness"]
    assert second["details"]["positive_classes"] == ["1"]
    assert not any("is assumed to be" in f["sentence"] for f in second["findings"])
    capsys.readouterr()


def ages(n, seed, low, high, name):
    rng = np.random.default_rng(seed)
    frame = three_groups(n, seed)
    frame[name] = rng.integers(low, high, n)
    return data_with(frame, sensitive=("group", name))


@pytest.mark.parametrize("name", ["age", "age_in_years", "Age", "applicantAge"])
def test_an_age_column_gets_the_same_fixed_bins_on_different_data(name):
    young, old = ages(800, 0, 18, 50, name), ages(900, 1, 40, 90, name)
    runs = [Fairness(intersections=1, mitigation=False).run(model_for(d), d) for d in (young, old)]
    edges = [r.details["bins"][name] for r in runs]
    assert edges[0] == edges[1] == {"edges": [25.0, 35.0, 45.0, 55.0, 65.0], "rule": "fixed age bins"}
    assert runs[0].tables["sensitive_bins"].iloc[0]["edges"] == "25, 35, 45, 55, 65"
    assert not any("quartiles" in w for r in runs for w in r.warnings)


def test_other_continuous_columns_are_cut_at_quartiles_with_a_warning_and_bins_override():
    data = ages(800, 0, 0, 100, "wage")  # "wage" is not an age column
    result = Fairness(intersections=1, mitigation=False).run(model_for(data), data)
    assert result.details["bins"]["wage"]["rule"] == "quartiles of this data"
    assert any(w.startswith("wage: continuous, cut at this data's quartiles") for w in result.warnings)
    fixed = Fairness(intersections=1, mitigation=False, bins={"wage": [50]}).run(model_for(data), data)
    assert fixed.details["bins"]["wage"] == {"edges": [50.0], "rule": "given"}
    assert set(fixed.tables["groups"].query("feature == 'wage'")["group"]) == {"<50", ">=50"}


def test_bins_are_set_from_the_command_line(capsys, tmp_path):
    from audit.cli import main

    frame = three_groups(400)
    frame["age_in_years"] = np.random.default_rng(0).integers(18, 80, len(frame))
    csv = tmp_path / "people.csv"
    frame.to_csv(csv, index=False)
    model = tmp_path / "people.pt"
    assert main(["train", "mlp", "--data", str(csv), "--target", "label", "--sensitive", "group", "age_in_years",
                 "--epochs", "1", "-o", str(model), "--quiet"]) == 0
    out = tmp_path / "r.json"
    assert main(["report", str(model), "--data", str(csv), "--target", "label", "--sensitive", "group",
                 "age_in_years", "--analyzers", "fairness", "--set", "fairness.bins={age_in_years=[40]}",
                 "--set", "fairness.mitigation=false", "-o", str(tmp_path / "r.html"), "--json", str(out),
                 "--quiet"]) == 0
    import json

    details = json.loads(out.read_text())["results"]["fairness"]["details"]
    assert details["bins"]["age_in_years"] == {"edges": [40.0], "rule": "given"}
    capsys.readouterr()


class Shifted(torch.nn.Module):
    """Predicts class 1 when x0 + shift > 0: with a large shift, nearly everyone is selected."""

    def __init__(self, shift: float):
        super().__init__()
        self.shift = shift

    def forward(self, x):
        z = x[:, 0] + self.shift
        return torch.stack([-z, z], dim=1) * 5


def test_a_model_that_selects_nearly_everyone_is_a_finding_and_never_better_in_compare():
    frame = three_groups(2000)
    data = data_with(frame)
    fair = audit.wrap(Shifted(0.0), modality="tabular", classes=data.classes, feature_names=["x0"])
    lazy = audit.wrap(Shifted(2.5), modality="tabular", classes=data.classes, feature_names=["x0"])
    quick = {"fairness": {"intersections": 1, "mitigation": False}}
    analyzer = Fairness(intersections=1, mitigation=False)
    result = judged(analyzer, analyzer.run(lazy, data), DEFAULT_VALUES)
    assert result.summary.degenerate.cls == "yes" and result.summary.degenerate.share >= 0.95
    assert result.caveat.startswith("the model predicts 'yes' for ")
    (finding,) = result.findings
    assert finding.severity == "high" and "'yes'" in finding.sentence
    assert "fairness.demographic_parity_difference" in finding.metrics
    fair_result = analyzer.run(fair, data)
    assert fair_result.summary.degenerate is None and not fair_result.caveat
    assert not any(f.severity == "high" for f in judged(analyzer, fair_result, DEFAULT_VALUES).findings)
    comparison = compare(fair, lazy, data, ["fairness"], options=quick)
    table = comparison.table().set_index("metric")
    dp = table.loc["fairness.demographic_parity_difference"]
    assert dp["candidate"] < dp["baseline"]  # the lazy model's gap is smaller ...
    assert dp["improved"] is None and dp["flag"].startswith("candidate: ")  # ... and is not called better:
    assert "'yes'" in dp["flag"]  # flagged with the fairness result's caveat
    assert "flagged: candidate: " in comparison.render_html()
    honest = compare(fair, fair, data, ["fairness"], options=quick).table()
    assert honest["flag"].isna().all()


def test_multiclass_accuracy_difference_is_the_gap_in_multiclass_accuracy():
    from fairlearn.metrics import MetricFrame
    from sklearn.metrics import accuracy_score

    from tests.test_fairness_metrics import groups_of, scorer_model, table

    data = table(n=900, classes=3)
    model = scorer_model(data, weights=((-1.0, 0.0), (0.0, 0.3), (1.0, 0.0)))
    result = Fairness(intersections=1, bins={"age": (40,)}, mitigation=False).run(model, data)
    y, pred = model.labels(data), model.predict(data)
    sex = groups_of(data, "sex")
    expected = MetricFrame(metrics=accuracy_score, y_true=y, y_pred=pred, sensitive_features=sex).difference()
    assert result.metrics["fairness.sex.accuracy_difference"] == pytest.approx(expected, abs=1e-12)
    rows = result.tables["disparities"].query("metric == 'accuracy_difference' and feature == 'sex'")
    assert list(rows["class"]) == ["all classes"]
    assert result.details["compared"]["fairness.sex.accuracy_difference"]["positive_class"] == "all classes"
    one = Fairness(intersections=1, bins={"age": (40,)}, mitigation=False, positive_class="q").run(model, data)
    assert one.metrics["fairness.sex.accuracy_difference"] == pytest.approx(expected, abs=1e-12)
