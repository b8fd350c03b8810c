"""Fairness findings, all read from the run's `FairnessSummary` (no tables, details or metric names parsed).

- a model that predicts one class for nearly every row (high): its parity gaps say little;
- binary labels that do not say which class is favourable, without a positive class given (medium);
- per sensitive feature (intersections are left to the tables: finer groups always lie further apart):
  error rates against equalized odds, selection rates against the four-fifths rule, and a gap in accuracy
  whose interval excludes 0 (not for a degenerate model: its gap in accuracy is a gap in the labels).

Each sentence names the groups, the class judged and what the groups are (people, sites or other groups), and
is written only from a pair of two different groups with finite rates.
"""

from __future__ import annotations

from collections.abc import Mapping

from audit.analyzers.fairness.summary import COMPARED, Disparity, FairnessSummary
from audit.core.groups import PEOPLE, SITES
from audit.core.result import Finding, points

#: How a sentence names the groups and the rows of one group, by what the groups are.
UNITS = {PEOPLE: "groups of people", SITES: "sites"}
MEMBERS = {PEOPLE: "people", SITES: "examples"}


def fairness_findings(summary: FairnessSummary, thresholds: Mapping[str, float]) -> tuple[Finding, ...]:
    findings = []
    if summary.degenerate:
        findings.append(_degenerate(summary))
    if summary.assumed_positive is not None:
        findings.append(_assumed_positive(summary))
    for feature, attribute in summary.attributes.items():
        if attribute.intersection:
            continue
        findings += _error_gap(summary, feature, thresholds["error_rate_gap_max"])
        findings += _selection_ratio(summary, feature, thresholds["selection_rate_ratio_min"])
        if not summary.degenerate:  # its accuracy by group is the share of the one class in each group's labels
            findings += _accuracy_gap(summary, feature, thresholds["error_rate_gap_max"])
    return tuple(findings)


def _headline(summary: FairnessSummary) -> tuple[str, ...]:
    return tuple(name for name in summary.worst if name.count(".") == 1)


def _degenerate(summary: FairnessSummary) -> Finding:
    d = summary.degenerate
    return Finding(
        "high", f"The model predicts {d.cls!r} for {d.share:.1%} of the {d.rows:,} rows: it barely tells cases "
        "apart, so small gaps between groups here say little about how it treats them.", _headline(summary),
        why="A model that gives almost everyone the same outcome passes parity gates without being fair.",
        next="Read the performance results (recall of each class, balanced accuracy) before the fairness numbers.")


def _assumed_positive(summary: FairnessSummary) -> Finding:
    positive = summary.assumed_positive
    other = next(c for c in summary.classes if c != positive)
    return Finding(
        "medium", f"The positive (favourable) class is assumed to be {positive!r}, the second of "
                  f"{list(summary.classes)}: the labels do not say which outcome is favourable, and every fairness "
                  f"number reads {positive!r} as the good outcome.", _headline(summary),
        why="Selection rates and error rates change meaning when the favourable outcome is the other class: a "
            "group that looks favoured may be the one held back.",
        next=f"If {other!r} is the favourable outcome, run again with --positive-class {other} "
             f"(fairness.positive_class); if {positive!r} is, pass --positive-class {positive} to say so.")


def _who(summary: FairnessSummary, feature: str) -> str:
    """"by sex, between groups of people", "by camera, between sites", "by batch, between groups"."""
    return f"by {feature}, between {UNITS.get(summary.attributes[feature].kind, 'groups')}"


def _proxy(summary: FairnessSummary, feature: str) -> str:
    if summary.attributes[feature].kind == SITES:
        return f"check what differs in the examples of each {feature} (capture, equipment, preprocessing)"
    return f"check whether {feature} or a proxy of it is a model input"


def _members(summary: FairnessSummary, feature: str) -> str:
    return MEMBERS.get(summary.attributes[feature].kind, "rows")


def _preview(summary: FairnessSummary) -> str:
    return ", and look at the mitigation preview" if summary.preview else ""


def _compared(d: Disparity | None) -> bool:
    return d is not None and d.supported and d.pair.state == COMPARED


def _error_gap(summary: FairnessSummary, feature: str, limit: float) -> list[Finding]:
    d = summary.disparity(feature, "equalized_odds_difference")
    if d is None or not d.supported:
        return []
    low, high = d.interval
    if not d.value > limit or low <= 0:
        return []
    severity = "high" if low > limit else "medium"
    if _compared(d):
        side = "below" if d.pair.worse_rate < d.pair.better_rate else "above"
        who = (f"{d.rate_words[0].upper()}{d.rate_words[1:]} for {d.pair.worse} is {points(d.value)} points {side} "
               f"{d.pair.better}'s [{points(low)}, {points(high)}] ({d.pair.worse_rate:.0%} vs "
               f"{d.pair.better_rate:.0%}; ")
    else:
        who = (f"True or false positive rates{_of(d)} differ by {points(d.value)} points [{points(low)}, "
               f"{points(high)}] (")
    return [Finding(
        severity=severity,
        sentence=f"{who}equalized odds {_who(summary, feature)}).",
        metrics=(f"fairness.{feature}.equalized_odds_difference",),
        why=(f"The model errs differently by {feature}: among {_members(summary, feature)} with the same true "
             f"outcome, those of one group get {d.cls!r} predicted more often. The gap is above {limit:g} "
             f"{'across its whole interval' if severity == 'high' else 'at its estimate'}."),
        next=(f"Compare the {feature} rows of the groups table (tpr, fpr, base_rate), {_proxy(summary, feature)}"
              f"{_preview(summary)}."),
    )]


def _of(d: Disparity) -> str:
    return "" if d.cls is None else f" of {d.cls!r}"


def _selection_ratio(summary: FairnessSummary, feature: str, limit: float) -> list[Finding]:
    d = summary.disparity(feature, "demographic_parity_ratio")
    if d is None or not d.supported:
        return []
    low, high = d.interval
    if not high < limit:
        return []
    metric = f"fairness.{feature}.demographic_parity_ratio"
    gap_name = f"fairness.{feature}.demographic_parity_difference"
    gap = summary.worst.get(gap_name)
    base = ""
    if _compared(d):
        worse, better = d.pair.worse_rate, d.pair.better_rate
        same = gap is not None and gap.supported and gap.cls == d.cls and (gap.pair.worse, gap.pair.better) == (
            d.pair.worse, d.pair.better)
        spread = f" [{points(gap.interval[0])}, {points(gap.interval[1])}]" if same else ""
        who = (f"Selection rate{_of(d)} for {d.pair.worse} is {points(better - worse)} points below "
               f"{d.pair.better}'s{spread} ({worse:.0%} vs {better:.0%}), {d.value:.2f} times theirs "
               f"[{low:.2f}, {high:.2f}]")
        labels = {g.group: g for g in summary.base_rates.get((feature, d.cls), ())}
        if d.pair.worse in labels and d.pair.better in labels:
            base = (f" In the labels the same groups are {d.cls!r} at {labels[d.pair.worse].rate:.0%} and "
                    f"{labels[d.pair.better].rate:.0%}.")
    else:
        who = (f"The lowest selection rate{_of(d)} {_who(summary, feature)} is {d.value:.2f} times the "
               f"highest [{low:.2f}, {high:.2f}]")
    return [Finding(
        severity="medium",
        sentence=f"{who} (demographic parity {_who(summary, feature)}; four-fifths rule {limit:g}).",
        metrics=(metric, gap_name) if gap is not None else (metric,),
        why=("Below four-fifths, a selection-rate gap counts as evidence of adverse impact that needs an "
             f"explanation.{base}"),
        next=(f"If the base rates differ as much, the gap comes from the data; if not, see the equalized odds "
              f"of {feature}{_preview(summary)}."),
    )]


def _accuracy_gap(summary: FairnessSummary, feature: str, limit: float) -> list[Finding]:
    """A gap in accuracy between groups whose interval excludes 0: medium when the whole interval lies above the
    error-rate limit, low otherwise."""
    d = summary.disparity(feature, "accuracy_difference")
    if not _compared(d) or d.interval[0] <= 0:
        return []
    low, high = d.interval
    of = "" if d.cls is None or len(summary.classes) == 2 else f" at telling {d.cls!r} from the other classes"
    labels = {g.group: g for g in summary.base_rates.get((feature, d.cls), ())} if len(summary.classes) == 2 else {}
    base = (f" In the labels {d.pair.worse} is {d.cls!r} at {labels[d.pair.worse].rate:.0%} and {d.pair.better} "
            f"at {labels[d.pair.better].rate:.0%}: groups whose cases are mostly one class are easier to get right, "
            "so part of the gap may follow from the labels." if d.pair.worse in labels and d.pair.better in labels
            else "")
    return [Finding(
        severity="medium" if low > limit else "low",
        sentence=(f"Accuracy{of} for {d.pair.worse} is {points(d.value)} points below {d.pair.better}'s "
                  f"[{points(low)}, {points(high)}] ({d.pair.worse_rate:.0%} vs {d.pair.better_rate:.0%}; "
                  f"accuracy {_who(summary, feature)})."),
        metrics=(f"fairness.{feature}.accuracy_difference",),
        why=(f"The model is wrong more often for {d.pair.worse} than for {d.pair.better}, and the interval of the "
             f"gap excludes 0: the difference is not noise.{base}"),
        next=(f"Compare the confusion matrices by {feature}: which classes does the model confuse for "
              f"{d.pair.worse}? Check whether its {_members(summary, feature)} differ in what the model sees "
              "(quality, coverage in the training data)."),
    )]
