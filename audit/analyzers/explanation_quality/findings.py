"""Explanation findings, read from the typed summary: methods that fail the randomization sanity check, methods
that disagree."""

from __future__ import annotations

from collections.abc import Mapping

from audit.analyzers.explanation_quality.summary import ExplanationSummary
from audit.core.result import Finding


def explanation_findings(summary: ExplanationSummary, thresholds: Mapping[str, float]) -> list[Finding]:
    checked = summary.sanity
    failed = [s for s in checked if not s.passed]
    findings = []
    if failed:
        correlations = ", ".join(f"{s.method.replace('_', ' ')} {s.correlation:.3f}" for s in failed)
        every = len(failed) == len(checked)
        findings.append(Finding(
            severity="high" if every else "medium",
            sentence=f"{'Every' if every else f'{len(failed)} of {len(checked)}'} explanation "
                     f"method{'' if len(checked) == 1 else 's'} fail{'s' if len(failed) == 1 else ''} the "
                     f"model-randomization sanity check: as the model's layers are re-initialized from the top "
                     f"down the attributions barely change (median rank correlation {correlations}; below "
                     f"{summary.sanity_threshold:g} passes).",
            metrics=tuple(f"explanations.{s.method}.sanity_passed" for s in failed),
            why="An explanation that does not change when the model's learned weights are destroyed shows the "
                "input, not what the model learned: the input itself and an edge detector score 1 here, Guided "
                "Backprop stays close to them (Adebayo et al. 2018, cascading randomization; signed attributions as "
                "Hedstroem et al. 2023 advise).",
            next="Do not read these methods' attributions as the model's reasons; use the methods that pass, "
                 "and see the sanity table of the explanation quality section."))
    agreement = summary.agreement
    if agreement is not None and agreement < thresholds["explanation_agreement_min"]:
        findings.append(Finding(
            severity="low",
            sentence=f"The attribution methods disagree: the mean rank correlation of their top features is "
                     f"{agreement:.2f} over {summary.samples} examples.",
            metrics=("explanations.agreement",),
            why="Methods that rank the features in opposite orders cannot all describe the model.",
            next="Prefer the methods whose deletion curve falls fastest (faithfulness table)."))
    return findings
