"""Findings: planted effects are found with their interval, absent ones are not; the default policy judges."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from planted import two_feature_mlp, two_feature_table

import audit
from audit.core.result import Result
from audit.analyzers.explanation_quality.analyzer import ExplanationQuality
from audit.analyzers.fairness.analyzer import Fairness
from audit.analyzers.fairness.summary import COMPARED, EQUAL, UNDEFINED, Attribute, Disparity, FairnessSummary, Pair
from audit.core.groups import PEOPLE
from audit.methods.attributions import registry
from audit.cli import main
from audit.core.analyzer import judged
from audit.policy.thresholds import DEFAULT_VALUES, default_policy_toml
from audit.models.spec import ModelSpec
from audit.policy.gates import Policy

ROOT = Path(__file__).resolve().parents[1]


def reference_model(name: str, folder: Path) -> audit.Model:
    """A shipped model spec, trained as `audit train` does."""
    shutil.copy(ROOT / "models" / f"{name}.toml", folder / f"{name}.toml")
    assert main(["train", str(folder / f"{name}.toml"), "--quiet"]) == 0
    return audit.load_model(ModelSpec.from_toml(folder / f"{name}.toml").output)


@pytest.fixture(scope="module")
def zoo(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("zoo")


def audit_reference(zoo: Path, name: str, analyzers: list[str], **kwargs) -> audit.AuditRun:
    model = reference_model(name, zoo)
    data = audit.load_dataset(name.split("-")[0], "test")
    return audit.run(model, data, analyzers, seed=0, **kwargs)


def sex_findings(run: audit.AuditRun, severity: str) -> list:
    return [f for f in run.result("fairness").findings
            if f.severity == severity and any(".sex." in m for m in f.metrics)]


def test_biased_adult_gets_a_high_finding_on_sex_and_adult_none(zoo):
    biased = audit_reference(zoo, "adult-mlp-biased", ["fairness"])
    high = sex_findings(biased, "high")
    assert len(high) == 1
    sentence = high[0].sentence
    assert "Female" in sentence and "Male" in sentence and "sex" in sentence
    gap = biased.metrics["fairness.sex.equalized_odds_difference"]
    low, up = biased.intervals["fairness.sex.equalized_odds_difference"]
    assert f"{gap * 100:.0f} points" in sentence and f"[{low * 100:.0f}, {up * 100:.0f}]" in sentence
    assert high[0].why and high[0].next
    assert biased.verdict.findings[0].severity == "high"  # the verdict leads with the worst
    assert "CONCERNS" in biased.verdict.summary and biased.verdict.exit_code == 0  # findings never fail a job

    fair = audit_reference(zoo, "adult-mlp", ["fairness"])
    assert sex_findings(fair, "high") == []


def test_fragile_digits_gets_a_robustness_finding_and_digits_none(zoo):
    fragile = audit_reference(zoo, "digits-cnn-fragile", ["robustness"])
    found = fragile.result("robustness").findings
    # The default threshold (1/2 of the correct predictions kept) is not tuned; the fragility is planted in the
    # spec (no noise augmentation and a quarter of the width), so the whole interval lies below it.
    assert [(f.severity, f.metrics) for f in found] == [("high", ("robustness.robust_accuracy",))]
    assert "%" in found[0].sentence
    robust = audit_reference(zoo, "digits-cnn", ["robustness"])
    assert robust.result("robustness").findings == ()


def input_itself(model, data, target, *, seed=0):
    """An "explanation" that ignores the model: the input as its own attribution."""
    return model.encode(data).float().numpy()


@pytest.mark.parametrize("methods, severity", [(("input_itself",), "high"),
                                               (("integrated_gradients", "input_itself"), "medium")])
def test_explanations_that_fail_the_sanity_check_get_a_finding(monkeypatch, methods, severity):
    monkeypatch.setitem(registry._METHODS, "input_itself",
                        registry.AttributionMethod("input_itself", input_itself, ("tabular",), "input itself"))
    model, data = two_feature_mlp(True), two_feature_table()[2]
    run = audit.run(model, data, [ExplanationQuality(methods=methods, samples=16)], seed=0)
    sanity = [f for f in run.result("explanation_quality").findings if "sanity check" in f.sentence]
    assert [(f.severity, f.metrics) for f in sanity] == [(severity, ("explanations.input_itself.sanity_passed",))]
    assert "input itself" in sanity[0].sentence and "integrated gradients" not in sanity[0].sentence


def fairness_result(gap: float, interval: tuple[float, float], pair: Pair | None = None) -> Result:
    """A fairness Result whose summary holds an equalized-odds gap of `gap` between groups a and b of sex."""
    metric = "fairness.sex.equalized_odds_difference"
    pair = pair or Pair("tpr", COMPARED, "a", "b", 0.5, 0.5 + gap)
    summary = FairnessSummary(
        classes=("no", "yes"), positive_classes=("yes",), assumed_positive=None,
        attributes={"sex": Attribute("sex", PEOPLE, ("a", "b"), (), False)},
        worst={metric: Disparity("sex", "equalized_odds_difference", "yes", gap, interval, pair, ()),
               "fairness.sex.demographic_parity_ratio": Disparity(
                   "sex", "demographic_parity_ratio", "yes", 1.0, (0.9, 1.0), Pair("selection_rate", EQUAL), ())},
        per_class=(), base_rates={}, degenerate=None, preview="", confidence=0.95)
    return Result(analyzer="fairness", metrics={metric: gap, "fairness.sex.demographic_parity_ratio": 1.0},
                  intervals={metric: interval, "fairness.sex.demographic_parity_ratio": (0.9, 1.0)}, summary=summary)


@pytest.mark.parametrize("gap, interval, severity", [
    (0.30, (0.20, 0.40), "high"),
    (0.30, (0.05, 0.40), "medium"),
    (0.30, (0.00, 0.45), None),  # the interval holds 0: no gap is claimed
    (0.08, (0.05, 0.11), None),  # within the 0.1 the default policy allows
])
def test_a_gap_is_claimed_only_where_its_interval_supports_it(gap, interval, severity):
    found = judged(Fairness(), fairness_result(gap, interval), DEFAULT_VALUES).findings
    assert [f.severity for f in found] == ([severity] if severity else [])
    if severity:
        assert found[0].sentence.startswith(f"True positive rate of 'yes' for a is {gap * 100:.0f} points below b's")


def test_findings_come_from_the_analyzers_judgement_alone():
    result = fairness_result(0.30, (0.20, 0.40))
    stray = audit.Finding("info", "a finding made elsewhere", ("fairness.sex.equalized_odds_difference",))
    mine = judged(Fairness(), Result(**{**result.__dict__, "findings": (stray,)}), DEFAULT_VALUES)
    assert stray not in mine.findings and mine.findings == Fairness().findings(result, DEFAULT_VALUES) != ()


def test_default_policy_prints_as_toml_and_judges_as_no_policy(tmp_path, capsys):
    assert main(["policy", "--default"]) == 0
    printed = capsys.readouterr().out
    assert printed == default_policy_toml()
    for name in DEFAULT_VALUES:  # every threshold says where it comes from
        assert f"\n{name} = " in printed and printed.split(f"\n{name} = ")[0].rstrip().endswith(".")
    path = tmp_path / "default.toml"
    path.write_text(printed)
    policy = Policy.from_toml(path)
    assert policy.thresholds == Policy().thresholds and policy.gates == ()

    model, data = two_feature_mlp(True), two_feature_table()[2]
    plain = audit.run(model, data, ["performance"], seed=0)
    judged = audit.run(model, data, ["performance"], seed=0, policy=policy)
    assert judged.verdict.to_dict() == plain.verdict.to_dict()


def test_a_user_policy_overrides_a_threshold():
    result = fairness_result(0.30, (0.20, 0.40))
    strict = Policy.from_dict({"thresholds": {"error_rate_gap_max": 0.5}})
    assert judged(Fairness(), result, strict.thresholds).findings == ()
    with pytest.raises(audit.AuditInputError, match="unknown threshold"):
        Policy.from_dict({"thresholds": {"gap": 0.5}})
    with pytest.raises(audit.AuditInputError, match="finite number"):
        Policy.from_dict({"thresholds": {"error_rate_gap_max": float("nan")}})


def test_a_finder_that_fails_leaves_a_finding_saying_so(monkeypatch):
    def broken(self, result, thresholds):
        raise KeyError("groups")

    monkeypatch.setattr(Fairness, "findings", broken)
    found = judged(Fairness(), fairness_result(0.3, (0.2, 0.4)), DEFAULT_VALUES).findings
    assert [f.severity for f in found] == ["medium"] and "could not be derived" in found[0].sentence


def test_groups_without_positives_name_no_pair():
    result = fairness_result(0.30, (0.20, 0.40), Pair("tpr", UNDEFINED))
    found = judged(Fairness(), result, DEFAULT_VALUES).findings
    assert found[0].sentence.startswith("True or false positive rates of 'yes' differ by 30 points")
