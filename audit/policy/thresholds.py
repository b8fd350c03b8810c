"""The thresholds findings are judged by, and the built-in default policy that sets them.

Every run without `--policy` is judged by DEFAULTS; a policy file's `[thresholds]` table
overrides them one by one. `audit policy --default` prints DEFAULTS as a policy file, with
where each value comes from, so `audit report --policy <that file>` judges as no policy does.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Threshold:
    name: str
    value: float
    source: str  # why this value: printed as the comment above it


DEFAULTS = (
    Threshold("selection_rate_ratio_min", 0.8, (
        "Four-fifths rule (US EEOC Uniform Guidelines on Employee Selection Procedures, 29 CFR 1607.4(D)):\n"
        "a group selected at less than 4/5 of the rate of the most selected group is evidence of adverse\n"
        "impact. A medium finding when the whole confidence interval of the ratio lies below it: the rule\n"
        "screens for a gap to explain, and a gap the labels carry too (different base rates) is not by\n"
        "itself the model's doing.")),
    Threshold("error_rate_gap_max", 0.1, (
        "Equalized odds (Hardt, Price and Srebro 2016): groups should have equal true and false positive\n"
        "rates. AI Fairness 360 (Bellamy et al. 2018) and holistic-ai document differences within +-0.1 as\n"
        "fair. A high finding when the whole confidence interval of the gap lies above it (the model errs\n"
        "differently by group beyond what the labels explain); medium when the estimate does and the\n"
        "interval excludes 0.")),
    Threshold("slice_gap_max", 0.1, (
        "The same +-0.1 as error_rate_gap_max, for a slice found by the search against the rest of the rows\n"
        "(its interval adjusted for every slice and metric tested). A high finding when the whole interval of the\n"
        "gap lies beyond it, medium when the estimate does, low for a smaller gap the search still supports.")),
    Threshold("robust_accuracy_ratio_min", 0.5, (
        "Share of the correctly classified examples an attack at the configured budget does not flip\n"
        "(robust accuracy, where no attack of FGSM, PGD, APGD and Square breaks the example, over clean accuracy;\n"
        "for text, 1 - the word-substitution success rate). Below 1/2 the attacks flip most correct\n"
        "predictions: the median flip epsilon lies inside the budget. A high finding when the whole 95%\n"
        "Wilson interval lies below it, medium when the estimate does.")),
    Threshold("explanation_agreement_min", 0.0, (
        "Mean rank correlation between attribution methods over their top features. Below 0 the methods\n"
        "rank features in opposite orders, so at most one of them can be read (a low finding).")),
)

DEFAULT_VALUES = {t.name: t.value for t in DEFAULTS}


def default_policy_toml() -> str:
    """DEFAULTS as a policy file a user can copy, edit and pass to --policy."""
    lines = [
        "# The built-in default policy of `audit`: the thresholds behind the findings of every run",
        "# without --policy. `audit report MODEL --policy THIS_FILE` judges exactly as no policy does.",
        "# Change a threshold to judge differently; add [gates.\"<metric>\"] tables (`audit metrics`",
        "# lists the names) to make the exit code fail a CI job.",
        "",
        "[thresholds]",
    ]
    for threshold in DEFAULTS:
        lines += [f"# {line}" for line in threshold.source.splitlines()]
        lines += [f"{threshold.name} = {threshold.value!r}", ""]
    return "\n".join(lines)
