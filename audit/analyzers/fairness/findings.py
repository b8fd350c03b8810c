"""Fairness findings: selection rates against the four-fifths rule, error rates against equalized odds.

One finding per sensitive feature and criterion (intersections are left to the tables:
finer groups always lie further apart). The group pair is the one issue-10's fairness
analyzer names in `details["compared"]`, else the groups with the extreme rates.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from audit.core.result import Finding, Result
from audit.core.groups import INTERSECTION
from audit.core.result import points

RATES = {"selection_rate": "Selection rate", "tpr": "True positive rate", "fpr": "False positive rate"}


def fairness_findings(result: Result, thresholds: Mapping[str, float]) -> list[Finding]:
    groups = result.tables.get("groups")
    features = [name.split(".", 1)[1].rsplit(".", 1)[0] for name in result.metrics
                if name.endswith(".demographic_parity_ratio") and name.count(".") >= 2]
    findings = []
    for feature in features:
        if INTERSECTION in feature:
            continue
        rows = _rows(groups, feature, result.details.get("groups_used", {}).get(feature))
        findings += _error_gap(result, feature, rows, thresholds["error_rate_gap_max"])
        findings += _selection_ratio(result, feature, rows, thresholds["selection_rate_ratio_min"])
    return findings


def _rows(groups: pd.DataFrame | None, feature: str, used) -> pd.DataFrame | None:
    """The feature's groups that enter its disparities, one row each (None for multi-class outcomes)."""
    if groups is None or "class" in groups.columns:
        return None
    rows = groups[groups["feature"] == feature]
    if used is not None:
        rows = rows[rows["group"].astype(str).isin([str(g) for g in used])]
    return rows.set_index(rows["group"].astype(str)) if len(rows) >= 2 else None


def _pair(result: Result, metric: str, rows: pd.DataFrame | None, rate: str) -> tuple[str, str] | None:
    """(lower group, higher group) of `rate`: the analyzer's named pair when it gives one."""
    compared = result.details.get("compared", {})
    named = compared.get(metric) or compared.get(metric.rsplit(".", 1)[-1])
    if isinstance(named, Mapping) and named.get("worse_group") is not None and rows is not None:
        worse, better = str(named["worse_group"]), str(named.get("better_group"))
        if worse in rows.index and better in rows.index:
            return (worse, better) if rows.at[worse, rate] <= rows.at[better, rate] else (better, worse)
    if rows is None or rows[rate].notna().sum() < 2:
        return None
    return str(rows[rate].idxmin()), str(rows[rate].idxmax())


def _error_gap(result: Result, feature: str, rows, limit: float) -> list[Finding]:
    metric = f"fairness.{feature}.equalized_odds_difference"
    if metric not in result.intervals:
        return []
    value, (low, high) = result.metrics[metric], result.intervals[metric]
    if value <= limit or low <= 0:
        return []
    severity = "high" if low > limit else "medium"
    rate, pair = "tpr", None
    if rows is not None:
        # The rate whose gap is the metric (the larger of the two); none when the table does not show it.
        gaps = {r: float(np.nan_to_num(rows[r].max() - rows[r].min(), nan=-1.0)) for r in ("tpr", "fpr")}
        rate = max(gaps, key=gaps.get)
        pair = _pair(result, metric, rows, rate) if abs(gaps[rate] - value) < 1e-9 else None
    who = (f"{RATES[rate]} for {pair[0]} is {points(value)} points below {pair[1]}'s" if pair else
           f"True or false positive rates differ by {points(value)} points between groups")
    return [Finding(
        severity=severity,
        sentence=f"{who} [{points(low)}, {points(high)}] (equalized odds, {feature}).",
        metrics=(metric,),
        why=(f"The model errs differently by {feature}: among people with the same true outcome, one group "
             f"gets the positive prediction more often. The gap is above {limit:g} "
             f"{'across its whole interval' if severity == 'high' else 'at its estimate'}."),
        next=(f"Compare the {feature} rows of the groups table (tpr, fpr, base_rate), check whether {feature} or "
              "a proxy of it is a model input, and look at the mitigation preview."),
    )]


def _selection_ratio(result: Result, feature: str, rows, limit: float) -> list[Finding]:
    metric = f"fairness.{feature}.demographic_parity_ratio"
    if metric not in result.intervals:
        return []
    value, (low, high) = result.metrics[metric], result.intervals[metric]
    if high >= limit:
        return []
    pair = _pair(result, metric, rows, "selection_rate")
    gap = f"fairness.{feature}.demographic_parity_difference"
    if pair:
        lower, upper = rows.at[pair[0], "selection_rate"], rows.at[pair[1], "selection_rate"]
        spread = f" [{points(result.intervals[gap][0])}, {points(result.intervals[gap][1])}]" \
            if gap in result.intervals else ""
        who = (f"Selection rate for {pair[0]} is {points(upper - lower)} points below {pair[1]}'s{spread} "
               f"({lower:.0%} vs {upper:.0%}), {value:.2f} times theirs [{low:.2f}, {high:.2f}]")
    else:
        who = f"The lowest selection rate by {feature} is {value:.2f} times the highest [{low:.2f}, {high:.2f}]"
    base = ""
    if rows is not None and pair:
        base_low, base_high = rows.at[pair[0], "base_rate"], rows.at[pair[1], "base_rate"]
        base = f" In the labels the same groups are positive at {base_low:.0%} and {base_high:.0%}."
    return [Finding(
        severity="medium",
        sentence=f"{who} (demographic parity, {feature}; four-fifths rule {limit:g}).",
        metrics=(metric, gap) if gap in result.metrics else (metric,),
        why=("Below four-fifths, a selection-rate gap counts as evidence of adverse impact that needs an "
             f"explanation.{base}"),
        next=(f"If the base rates differ as much, the gap comes from the data; if not, see the equalized odds "
              f"of {feature} and the mitigation preview."),
    )]
