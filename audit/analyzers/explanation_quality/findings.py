"""Explanation findings: methods that fail the randomization sanity check, methods that disagree."""

from __future__ import annotations

from collections.abc import Mapping

from audit.core.result import Finding, Result

SANITY = "explanations.{}.sanity_passed"


def explanation_findings(result: Result, thresholds: Mapping[str, float]) -> list[Finding]:
    methods = list(result.details.get("methods", []))
    checked = [m for m in methods if SANITY.format(m) in result.metrics]
    failed = [m for m in checked if result.metrics[SANITY.format(m)] == 0.0]
    findings = []
    if failed:
        threshold = result.config.get("sanity_threshold", 0.5)
        correlations = ", ".join(
            f"{m.replace('_', ' ')} {result.metrics.get(f'explanations.{m}.randomization_correlation', float('nan')):.3f}"
            for m in failed)
        every = len(failed) == len(checked)
        findings.append(Finding(
            severity="high" if every else "medium",
            sentence=f"{'Every' if every else f'{len(failed)} of {len(checked)}'} explanation "
                     f"method{'' if len(checked) == 1 else 's'} fail{'s' if len(failed) == 1 else ''} the "
                     f"model-randomization sanity check: as the model's layers are re-initialized from the top "
                     f"down the attributions barely change (median rank correlation {correlations}; below "
                     f"{threshold:g} passes).",
            metrics=tuple(SANITY.format(m) for m in failed),
            why="An explanation that does not change when the model's learned weights are destroyed shows the "
                "input, not what the model learned: the input itself and an edge detector score 1 here, Guided "
                "Backprop stays close to them (Adebayo et al. 2018, cascading randomization; signed attributions as "
                "Hedstroem et al. 2023 advise).",
            next="Do not read these methods' attributions as the model's reasons; use the methods that pass, "
                 "and see the sanity table of the explanation quality section."))
    agreement = result.metrics.get("explanations.agreement")
    limit = thresholds["explanation_agreement_min"]
    if agreement is not None and agreement < limit:
        findings.append(Finding(
            severity="low",
            sentence=f"The attribution methods disagree: the mean rank correlation of their top features is "
                     f"{agreement:.2f} over {result.details.get('samples', 'the')} examples.",
            metrics=("explanations.agreement",),
            why="Methods that rank the features in opposite orders cannot all describe the model.",
            next="Prefer the methods whose deletion curve falls fastest (faithfulness table)."))
    return findings
