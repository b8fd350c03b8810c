"""Robustness findings: the share of correct predictions an attack keeps, and attacks that cannot be trusted."""

from __future__ import annotations

from collections.abc import Mapping

from scipy.stats import binomtest

from audit.core.result import Finding, Result
from audit.core.result import points

CONFIDENCE = 0.95


def robustness_findings(result: Result, thresholds: Mapping[str, float]) -> list[Finding]:
    findings = _kept_share(result, thresholds["robust_accuracy_ratio_min"])
    if result.metrics.get("robustness.sanity_passed") == 0.0:
        checks = result.tables.get("sanity_checks")
        failed = ", ".join(checks.loc[~checks["passed"].astype(bool), "name"]) if checks is not None else ""
        findings.append(Finding(
            severity="high",
            sentence=f"The attack sanity checks failed ({failed or 'see the robustness section'}): the robust "
                     "accuracy shown may be overstated.",
            metrics=("robustness.sanity_passed",),
            why="When gradients are masked, gradient attacks fail for the wrong reason and a fragile model "
                "looks robust (Athalye, Carlini and Wagner 2018).",
            next="Read the sanity checks table; trust the gradient-free search over PGD until they pass."))
    return findings


def _kept_share(result: Result, limit: float) -> list[Finding]:
    """The share of correct predictions the attack does not flip, with its Wilson interval."""
    metrics, details = result.metrics, result.details
    if "robustness.robust_accuracy" in metrics:  # no attack (FGSM, PGD, Square) breaks the example
        metric, clean = "robustness.robust_accuracy", metrics["robustness.clean_accuracy"]
        kept = metrics[metric] / clean if clean else 0.0
        correct = round(clean * details.get("examples_attacked", 0))
        attack = (f"The strongest attack at epsilon {details.get('epsilon', float('nan')):.3g} "
                  f"({details.get('norm', 'linf')})")
    elif "robustness.text_attack_success_rate" in metrics:  # never the embedding-neighbour probe: it need not
        metric, kept = "robustness.text_attack_success_rate", 1 - metrics["robustness.text_attack_success_rate"]
        correct = details.get("texts_attacked", 0)  # keep the meaning, so it shows sensitivity, not fragility
        attack = "Swapping words for WordNet synonyms of the same part of speech"
    else:
        return []
    if not correct or kept != kept:
        return []
    ci = binomtest(round(kept * correct), correct).proportion_ci(CONFIDENCE, method="wilson")
    if kept >= limit:
        return []
    severity = "high" if ci.high < limit else "medium"
    flipped_low, flipped_high = 1 - ci.high, 1 - ci.low
    return [Finding(
        severity=severity,
        sentence=f"{attack} flips {points(1 - kept)}% of the {correct} correctly classified examples "
                 f"[{points(flipped_low)}, {points(flipped_high)}]; robust accuracy is {kept:.2f} of clean.",
        metrics=(metric,),
        why=f"More than {1 - limit:.0%} of the correct predictions flip under small input changes "
            f"({'across the whole interval' if severity == 'high' else 'at the estimate; the interval reaches back'}"
            "): the model's decisions are easy to push.",
        next="See the robust accuracy by epsilon curve and the adversarial examples; train with noise or "
             "adversarial augmentation and compare with audit compare.")]
