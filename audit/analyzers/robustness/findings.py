"""Robustness findings, read from the typed summary: the share of correct predictions an attack keeps, a model that
is random at inference, and attacks that cannot be trusted."""

from __future__ import annotations

from collections.abc import Mapping

from scipy.stats import binomtest

from audit.analyzers.robustness.summary import RobustnessSummary
from audit.core.result import Finding, points

CONFIDENCE = 0.95
MASKED = "pgd_not_beaten_by_square"
DETERMINISTIC = "model_is_deterministic"


def robustness_findings(summary: RobustnessSummary, thresholds: Mapping[str, float]) -> list[Finding]:
    failed = summary.failed_checks
    masked = [c for c in failed if c.name == MASKED]
    broken = [c for c in failed if c.name not in (MASKED, DETERMINISTIC)]
    findings = []
    if summary.stochastic:
        findings.append(_random_model(summary))
    if masked:
        findings.append(_masked_gradient(summary, masked))
    if broken:
        findings.append(Finding(
            "high", f"An attack sanity check failed ({', '.join(sorted({c.name for c in broken}))}): the gradient "
            "attacks may be broken on this model and its robustness may be false.",
            metrics=("robustness.sanity_passed",),
            why="An iterative attack weaker than one step, or one that cannot break the model with an unbounded "
                "perturbation, is not following a useful gradient (Carlini et al., 2019).",
            next="See the sanity checks table; read robustness.robust_accuracy and treat it as an upper bound."))
    if not (summary.stochastic or masked):  # those two already state the robust accuracy and how to read it
        findings += _kept_share(summary, thresholds["robust_accuracy_ratio_min"])
    if failed and not (masked or broken):  # a random model: its one failed check, which the findings above skip
        findings.append(Finding(
            severity="high",
            sentence=f"The attack sanity checks failed ({', '.join(c.name for c in failed)}): the robust "
                     "accuracy shown may be overstated.",
            metrics=("robustness.sanity_passed",),
            why="When gradients are masked, gradient attacks fail for the wrong reason and a fragile model "
                "looks robust (Athalye, Carlini and Wagner 2018).",
            next="Read the sanity checks table; trust the gradient-free search over PGD until they pass."))
    return findings


def _random_model(summary: RobustnessSummary) -> Finding:
    draws = summary.draws
    return Finding(
        "medium", f"The model is random at inference: the same input gives different outputs, so every attack "
        f"averaged its gradient over {draws} draws and every example was scored by the majority of {draws} draws "
        f"(robust accuracy {summary.robust_accuracy:.2f}).",
        metrics=("robustness.stochastic_model", "robustness.robust_accuracy"),
        why="Randomness hides the gradient from a single-draw attack and lets one lucky draw decide an "
            "example, so single-draw robustness flatters the model (Athalye et al., 2018).",
        next="Check that the randomness is intended; judge robustness by the averaged (EOT) attack only.")


def _masked_gradient(summary: RobustnessSummary, masked: list) -> Finding:
    at = ", ".join(f"{c.epsilon:.3g}" for c in masked)
    return Finding(
        "high", f"The gradient is masked: at epsilon {at} stronger attacks (APGD with the scale-free DLR loss, "
        f"the gradient-free Square) broke examples that PGD could not, so PGD's accuracy "
        f"({summary.pgd_accuracy:.2f}) overstates robustness; over all attacks it is {summary.robust_accuracy:.2f}.",
        metrics=("robustness.sanity_passed", "robustness.pgd_accuracy", "robustness.robust_accuracy"),
        why="A gradient attack that a search without gradients beats is following a misleading or vanishing "
            "gradient; the model is not as robust as PGD says (Carlini et al., 2019).",
        next="Read robustness.robust_accuracy, not PGD's, and look for rounding, saturated outputs or "
             "non-differentiable steps in the model's forward pass.")


def _kept_share(summary: RobustnessSummary, limit: float) -> list[Finding]:
    """The share of correct predictions the attack does not flip, with its Wilson interval."""
    kept, correct = summary.kept, summary.correct
    if not correct or kept != kept:
        return []
    ci = binomtest(round(kept * correct), correct).proportion_ci(CONFIDENCE, method="wilson")
    if kept >= limit:
        return []
    if summary.epsilon is None:  # never the embedding-neighbour probe: it need not keep the meaning, so it
        attack = "Swapping words for WordNet synonyms of the same part of speech"  # shows sensitivity, not fragility
    else:
        attack = f"The strongest attack at epsilon {summary.epsilon:.3g} ({summary.norm})"
    severity = "high" if ci.high < limit else "medium"
    flipped_low, flipped_high = 1 - ci.high, 1 - ci.low
    return [Finding(
        severity=severity,
        sentence=f"{attack} flips {points(1 - kept)}% of the {correct} correctly classified examples "
                 f"[{points(flipped_low)}, {points(flipped_high)}]; robust accuracy is {kept:.2f} of clean.",
        metrics=(summary.metric,),
        why=f"More than {1 - limit:.0%} of the correct predictions flip under small input changes "
            f"({'across the whole interval' if severity == 'high' else 'at the estimate; the interval reaches back'}"
            "): the model's decisions are easy to push.",
        next="See the robust accuracy by epsilon curve and the adversarial examples; train with noise or "
             "adversarial augmentation and compare with audit compare.")]
