"""Fairness: per-group metrics, disparities with confidence intervals, text counterfactuals, a mitigation preview.

The outcome judged is "predicted as the positive class". Binary models: the positive
class is `positive_class`, by default the second class. Multi-class models: with
`positive_class` set, that class against the rest; without it, each class against the
rest, and every disparity is the worst over the classes.

Groups below `min_group_size` rows are listed in the group table (flag `small`) and
named in a warning, but left out of the disparities: a gap between a group of 8 and a
group of 8,000 is mostly noise, and must not decide a verdict silently. Likewise a group
with fewer than `min_positives` positive (negative) labels carries no true (false)
positive rate and is left out of those disparities (flags `few_positives`,
`few_negatives`), rather than scored as a rate of 0. The unqualified
metric (`fairness.demographic_parity_difference`) is the worst case over the sensitive
features themselves; intersections (`fairness.sex&race.<metric>`) are reported under
their own names and kept out of it, since finer groups always lie further apart.

Each disparity is unsigned (largest minus smallest, or smallest over largest). What it
compares is computed once, in the Result's `summary` (audit.analyzers.fairness.summary.
FairnessSummary): the feature, the worse-off and better-off group chosen by one rule (or
"all groups equal", "undefined"), the rates and the positive class (taken as the favourable
outcome; binary labels that do not say which it is, such as 1/2, are a finding). The
disparities table, `details["compared"]`, the Result's `drivers`, `caveat` and `notes` and
every finding (`Fairness.findings`) are read from it. Beside them, the signed metrics of
AIF360 against a reference group (`reference_group`, default the largest). A model that
predicts one class for nearly every row is a finding: its parity gaps are small because it
barely discriminates. Multi-class `accuracy_difference` is the gap in (multi-class) accuracy.

Every disparity gets a score confidence interval (`confidence`; audit.methods.fairness.intervals:
Newcombe's hybrid score interval for gaps, a MOVER log interval for ratios, a Bonferroni
adjustment for the worst case over groups, rates, classes and features), so a policy gate
can read its upper bound (`use = "upper"`); benchmarks/interval_coverage.py checks its coverage by
simulation. Continuous sensitive columns are bucketed by one rule (audit.core.groups:
given edges, else fixed age bins <25, 25-34, ..., >=65 for any column named for age, else
this data's quartiles, with a warning); `bins={"age": (30, 50)}` overrides, and the edges
are in the `sensitive_bins` table. Text models also get counterfactual identity probes
(audit.methods.fairness.counterfactual), with or without sensitive columns; binary outcomes get a
threshold post-processing preview (audit.methods.fairness.preview) that never touches the model.

This module is the configuration; the counts are tally.py's, the group tables, details and summary groups.py's,
the worst cases with their intervals disparities.py's, the figures figures.py's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from audit._util.errors import AuditInputError
from audit.analyzers.fairness.disparities import higher_is_worse
from audit.analyzers.fairness.findings import fairness_findings
from audit.analyzers.fairness.tally import FairnessTally
from audit.core.analyzer import Analyzer, Cost, Probed, UNPROBED, register_analyzer
from audit.core.groups import SensitiveValues
from audit.core.result import MetricSpec, Result
from audit.methods.fairness.metrics import COMPARES, DISPARITIES


def _spec(metric: str, scope: str) -> MetricSpec:
    kind = COMPARES[metric][1]
    how = ("largest minus smallest, unsigned, 0 = parity" if kind == "difference"
           else "smallest over largest, 1 = parity")
    return MetricSpec(f"{DISPARITIES[metric][0]} ({scope}; {how}; of the positive class, fairness.positive_class, "
                      "default the second class; the report names the worse-off and better-off group)",
                      "lower" if higher_is_worse(metric) else "higher", interval=True)


@register_analyzer
@dataclass(frozen=True, kw_only=True)
class Fairness(Analyzer):
    """Does the model treat the groups of each sensitive attribute differently, and how sure are we?"""

    positive_class: str | int | None = None
    min_group_size: int = 30
    min_positives: int = 10  # a group's TPR (FPR) needs this many positive (negative) labels
    intersections: int = 2  # cross up to this many sensitive features; 1 for none
    bins: Mapping[str, tuple[float, ...]] = field(default_factory=dict)
    reference_group: Mapping[str, str] = field(default_factory=dict)  # feature -> group the signed metrics use
    confidence: float = 0.95
    mitigation: bool = True
    samples: int = 500  # held-out sentences the text counterfactual probe reads

    name = "fairness"
    concern = "Fairness"
    title = "Fairness"
    description = ("per-group metrics and disparities with score confidence intervals, intersections, "
                   "text counterfactual probes, threshold post-processing preview")
    metric_prefix = "fairness"
    needs_model = False
    headline = ("fairness.equalized_odds_difference", "fairness.demographic_parity_difference",
                "fairness.counterfactual_flip_rate")
    metrics = {
        **{f"fairness.{m}": _spec(m, "worst case over the sensitive features") for m in DISPARITIES},
        **{f"fairness.<feature>.{m}": _spec(m, "one sensitive feature or intersection") for m in DISPARITIES},
        "fairness.counterfactual_flip_rate": MetricSpec(
            "text: largest share, over identity pairs, of predictions that change class when only the "
            "identity term changes (interval: the pairs' Wilson intervals, Bonferroni over pairs)", "lower"),
        "fairness.counterfactual_max_delta": MetricSpec(
            "text: largest change in a predicted class probability when only the identity term changes", "lower"),
    }

    def supports(self, model, data) -> bool:
        return len(data.sensitive.columns) > 0 or model.modality == "text"

    def findings(self, result, thresholds):
        return fairness_findings(result.summary, thresholds) if result.summary is not None else ()

    def run(self, model, data, *, seed: int = 0) -> Result:
        tally = self.tally(model, SensitiveValues.of(data.sensitive), seed=seed)
        if tally.rules:
            tally.add(data, model.predict_proba(data), 0)
        return tally.result(data)

    def sample_size(self, model, rows: int) -> int:
        return super().sample_size(model, rows) if model.modality == "text" else 0  # the text probe's sentences

    def cost(self, model, rows: int, *, probed: Probed = UNPROBED) -> Cost:
        """The text probe's forwards (a sentence and its counterfactual, at most); the group intervals and
        mitigations take seconds besides (3.4 CPU s on adult-mlp; a text's probe without groups next to none)."""
        return Cost(forward=2 * self.sample_size(model, rows), seconds=0.1 if model.modality == "text" else 3.4)

    def tally(self, model, values: SensitiveValues, *, seed: int) -> FairnessTally:
        return FairnessTally(self, model, values, seed)

    def __post_init__(self) -> None:
        if self.min_group_size < 1:
            raise AuditInputError(f"fairness: min_group_size must be at least 1, not {self.min_group_size}")
        if self.min_positives < 1:
            raise AuditInputError(f"fairness: min_positives must be at least 1, not {self.min_positives}")
        if not 0 < self.confidence < 1:
            raise AuditInputError(f"fairness: confidence must lie between 0 and 1, not {self.confidence}")
        if self.intersections < 1:
            raise AuditInputError(f"fairness: intersections must be at least 1, not {self.intersections}")
        if not isinstance(self.reference_group, Mapping) or not all(
                isinstance(g, (str, int)) for g in self.reference_group.values()):
            raise AuditInputError("fairness: reference_group must map a sensitive feature to one of its groups, "
                                  f"e.g. {{sex = \"Male\"}}, found {self.reference_group!r}")
        if not isinstance(self.bins, Mapping) or not all(
                isinstance(edges, (list, tuple)) and edges and all(isinstance(e, (int, float)) for e in edges)
                for edges in self.bins.values()):
            raise AuditInputError(
                f"fairness: bins must map a column to its bin edges, e.g. {{age = [25, 45, 65]}}, found {self.bins!r}")

    def check(self, model) -> None:
        self.targets(model.classes)

    def targets(self, classes: tuple[str, ...]) -> list[int]:
        """The class indices judged as "positive", one outcome each."""
        if self.positive_class is not None:
            positive = str(self.positive_class)  # `--set fairness.positive_class=1` arrives as an int
            if positive not in classes:
                raise AuditInputError(
                    f"fairness: positive_class {positive!r} is not a class of the model {list(classes)}")
            return [classes.index(positive)]
        return [1] if len(classes) == 2 else list(range(len(classes)))
