"""Robustness findings are read from the typed summary alone: a planted fragile share, random model or failed
sanity check is found, and none is found without it."""

from __future__ import annotations

import math

import pytest

from audit.analyzers.robustness.analyzer import Robustness
from audit.analyzers.robustness.summary import RobustnessSummary
from audit.core.analyzer import judged
from audit.core.result import Result
from audit.methods.robustness.sanity import Check
from audit.policy.thresholds import DEFAULT_VALUES

ROBUST = "robustness.robust_accuracy"


def found(**fields) -> list[tuple[str, tuple[str, ...]]]:
    """(severity, metrics) of the findings, high first, of a result that holds nothing but its summary."""
    summary = RobustnessSummary(**{"metric": ROBUST, "correct": 200, "kept": 0.9, "epsilon": 0.1, **fields})
    result = judged(Robustness(), Result(analyzer="robustness", summary=summary), DEFAULT_VALUES)
    return [(f.severity, f.metrics) for f in result.findings]


@pytest.mark.parametrize("kept, severity", [(0.9, None), (0.2, "high"), (0.45, "medium"), (math.nan, None)])
def test_the_share_an_attack_keeps_is_judged_with_its_interval(kept, severity):
    assert found(kept=kept) == ([(severity, (ROBUST,))] if severity else [])


def test_the_sentence_names_the_attack_epsilon_norm_and_count():
    summary = RobustnessSummary(metric=ROBUST, correct=200, kept=0.2, epsilon=0.05, norm="l2")
    (finding,) = Robustness().findings(Result(analyzer="robustness", summary=summary), DEFAULT_VALUES)
    assert finding.sentence.startswith("The strongest attack at epsilon 0.05 (l2) flips 80% of the 200 correctly")
    text = RobustnessSummary(metric="robustness.text_attack_success_rate", correct=30, kept=0.1)
    (finding,) = Robustness().findings(Result(analyzer="robustness", summary=text), DEFAULT_VALUES)
    assert finding.sentence.startswith("Swapping words for WordNet synonyms")
    assert "of the 30 correctly" in finding.sentence


def test_a_random_model_is_named_and_its_failed_check_said():
    deterministic = Check("model_is_deterministic", math.nan, False, "outputs differ")
    assert found(kept=0.2, stochastic=True, draws=11, failed_checks=(deterministic,)) == [
        ("high", ("robustness.sanity_passed",)),
        ("medium", ("robustness.stochastic_model", ROBUST))]


def test_a_masked_gradient_and_a_broken_attack_are_named_once_each():
    masked = Check("pgd_not_beaten_by_square", 0.1, False, "square broke more")
    weaker = Check("pgd_not_weaker_than_fgsm", 0.05, False, "pgd weaker")
    assert found(kept=0.2, failed_checks=(masked, weaker)) == [
        ("high", ("robustness.sanity_passed", "robustness.pgd_accuracy", ROBUST)),
        ("high", ("robustness.sanity_passed",))]
    assert found(kept=0.2, failed_checks=(weaker,)) == [("high", ("robustness.sanity_passed",)), ("high", (ROBUST,))]
