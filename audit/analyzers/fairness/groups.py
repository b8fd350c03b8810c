"""The sensitive-group part of the fairness result, from the counts of a FairnessTally: which groups are compared
(by size and by positive and negative labels), the group, disparity, signed, bin and mitigation tables, the
details, the figures, and the typed FairnessSummary every view reads."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from audit._util.errors import AuditInputError
from audit.analyzers.fairness import figures
from audit.analyzers.fairness.disparities import ALL_CLASSES, INTERVAL_METHOD, summarize
from audit.analyzers.fairness.summary import Attribute, Degenerate, FairnessSummary, GroupRate
from audit.core.groups import INTERSECTION, QUARTILES, attribute_kind, bucketed
from audit.methods.fairness.metrics import COMPARES, DISPARITIES, RATE_NAMES, disparities, signed_against
from audit.methods.fairness.preview import MITIGATION_TABLE, threshold_preview

if TYPE_CHECKING:
    from audit.analyzers.fairness.analyzer import Fairness
    from audit.analyzers.fairness.tally import FairnessTally

RATE_NEEDS = {"tpr": ("positives", ("fn", "tp")), "fpr": ("negatives", ("tn", "fp"))}
SIGNED_TABLE = "signed_against_reference_(aif360_conventions)"
DEGENERATE_SHARE = 0.95  # a model predicting one class for at least this share of rows barely discriminates
#: Binary labels whose second class is plainly the positive outcome; for others (1/2, good/bad) the run says
#: which class it took.
OBVIOUS_POSITIVE = {("0", "1"), ("false", "true"), ("no", "yes"), ("n", "y"), ("negative", "positive"),
                    ("neg", "pos")}


def group_part(analyzer: Fairness, tally: FairnessTally) -> dict:
    """Metrics, intervals, tables, details, figures, warnings and the summary of the sensitive groups."""
    classes, targets = tally.classes, tally.targets
    groups = tally.present_groups()
    tables, estimates, compared_rows, used, warnings, signed, references = [], {}, {}, {}, [], [], {}
    base_rates = {}
    _check_references(analyzer, groups)
    bins = bucketed(tally.rules)
    for feature, (edges, rule) in bins.items():
        if rule == QUARTILES:
            warnings.append(f"{feature}: continuous, cut at this data's quartiles {list(edges)}, which differ "
                            f"from one data set to the next; give fixed edges (fairness.bins) to compare runs")
    assumed = (classes[1] if analyzer.positive_class is None and len(classes) == 2 and not _obvious_positive(classes)
               else None)
    for feature, names in groups.items():
        kept, small = _split_by_size(analyzer, feature, tally.sizes(feature), warnings)
        used[feature] = (kept, small)
        if len(classes) > 2 and len(kept) >= 2:
            compared_rows[feature, None] = tally.accuracy_table(feature).loc[kept]
        for target in targets:
            by_group = tally.group_table(feature, target).reindex(names)
            if len(kept) >= 2:
                rows_of = _rows_per_disparity(analyzer, by_group.loc[kept], feature, classes[target], warnings)
                compared_rows[feature, target] = rows_of
                estimates[feature, target] = {m: disparities(t)[m] for m, t in rows_of.items()}
                references[feature] = _reference(analyzer, feature, kept, by_group)
                base_rates[feature, classes[target]] = tuple(
                    GroupRate(str(g), float(r["base_rate"]), float(r["fn"] + r["tp"]), float(r["count"]))
                    for g, r in by_group.loc[kept].iterrows())
                table = signed_against(by_group.loc[kept], references[feature])
                table.insert(0, "feature", feature)
                table.insert(1, "class", classes[target])
                signed.append(table)
            tables.append(_group_rows(analyzer, by_group, feature, classes[target] if len(targets) > 1 else None))
    metrics, intervals, rows, worst, per_class = summarize(estimates, compared_rows, tally.single, targets, classes,
                                                           analyzer.confidence)
    for feature in groups:
        if len(used[feature][0]) < 2:  # the data leave its disparities undefined: NaN, which fails a gate
            for metric in DISPARITIES:
                metrics[f"fairness.{feature}.{metric}"] = math.nan
                intervals[f"fairness.{feature}.{metric}"] = (math.nan, math.nan)
    disparity_frame = pd.DataFrame(rows)
    if len(disparity_frame):
        disparity_frame["excluded_groups"] = disparity_frame["feature"].map(lambda f: ", ".join(used[f][1]))
    group_rows = pd.concat(tables, ignore_index=True)
    crossed = group_rows["feature"].str.contains(INTERSECTION, regex=False)
    tables = {"groups": group_rows[~crossed].reset_index(drop=True), "disparities": disparity_frame}
    if signed:
        tables[SIGNED_TABLE] = pd.concat(signed, ignore_index=True)
    if bins:
        tables["sensitive_bins"] = pd.DataFrame(
            [{"feature": f, "edges": ", ".join(f"{e:g}" for e in edges), "groups": ", ".join(
                map(str, tally.rules[f].groups)), "rule": rule} for f, (edges, rule) in bins.items()])
    if crossed.any():
        tables["intersectional_groups"] = group_rows[crossed].reset_index(drop=True)
    compared = {name: {"feature": d.feature, "worse_group": d.pair.worse, "better_group": d.pair.better,
                       "rate": d.pair.rate, "direction": d.direction,
                       "positive_class": ALL_CLASSES if d.cls is None else d.cls} for name, d in worst.items()}
    details = {"positive_classes": [classes[t] for t in targets], "compared": compared,
               "reference_groups": references,
               "bins": {f: {"edges": list(edges), "rule": rule} for f, (edges, rule) in bins.items()},
               "confidence": analyzer.confidence, "interval_method": INTERVAL_METHOD,
               "min_group_size": analyzer.min_group_size, "min_positives": analyzer.min_positives,
               "groups_used": {f: list(k) for f, (k, _) in used.items()},
               "groups_excluded": {f: list(s) for f, (_, s) in used.items() if s}}
    preview = _preview(analyzer, tally, used, tables, details)
    figs = _figures(analyzer, tally, disparity_frame, used, groups)
    degenerate = _degenerate(tally.predicted, classes)
    if degenerate:
        details["degenerate"] = {"class": degenerate.cls, "share": degenerate.share}
    summary = FairnessSummary(
        classes=tuple(classes), positive_classes=tuple(classes[t] for t in targets), assumed_positive=assumed,
        attributes={f: Attribute(f, attribute_kind(f), tuple(map(str, kept)),
                                 tuple((str(g), f"fewer than {analyzer.min_group_size} rows") for g in small),
                                 INTERSECTION in f) for f, (kept, small) in used.items()},
        worst=worst, per_class=per_class, base_rates=base_rates, degenerate=degenerate, preview=preview,
        confidence=analyzer.confidence)
    return {"metrics": metrics, "intervals": intervals, "tables": tables, "details": details,
            "figures": figs, "warnings": warnings, "summary": summary}


def _preview(analyzer: Fairness, tally: FairnessTally, used: dict, tables: dict, details: dict) -> str:
    """Adds the threshold post-processing preview's table and detail; returns the note shown with the table."""
    if not analyzer.mitigation:
        return ""
    if len(tally.targets) != 1:
        details["mitigation_preview"] = "not run: threshold post-processing needs one positive class"
        return ""
    rows_seen = int(tally.predicted.sum())
    outcome, single = tally.preview.sample()
    score, y_true, y_pred = outcome[:, 0], outcome[:, 1].astype(int), outcome[:, 2].astype(int)
    tables[MITIGATION_TABLE] = threshold_preview(score, y_true, y_pred, single,
                                                 {f: used[f][0] for f in tally.single}, seed=tally.seed)
    of = (f"the {rows_seen:,} audited rows" if len(score) == rows_seen else
          f"a seeded sample of {len(score):,} of the {rows_seen:,} audited rows")
    preview = ("PREVIEW, the model is not changed: fairlearn ThresholdOptimizer fitted on the model's "
               f"positive-class scores of a seeded half of {of}, evaluated on the other half")
    details["mitigation_preview"] = preview
    return preview


def _figures(analyzer: Fairness, tally: FairnessTally, disparity_frame: pd.DataFrame, used: dict,
             groups: Mapping[str, list]) -> list:
    classes, first = tally.classes, tally.targets[0]
    figs = [figures.disparity_chart(disparity_frame, analyzer.confidence)] if len(disparity_frame) else []
    figs += [figures.group_confusions(f, tally.confusions(f), classes, used[f][0])
             for f in tally.single if used[f][0]]
    figs += [figures.intersection_map(*tally.selection(f, first), classes[first], analyzer.min_group_size)
             for f in groups if f.count(INTERSECTION) == 1]
    return figs


def _degenerate(predicted: np.ndarray, classes) -> Degenerate | None:
    """The class predicted for at least DEGENERATE_SHARE of the rows (`predicted`: rows per class), with its
    share; None if there is none."""
    rows = int(predicted.sum())
    share = predicted.max() / max(rows, 1)
    return Degenerate(classes[int(predicted.argmax())], float(share), rows) if share >= DEGENERATE_SHARE else None


def _obvious_positive(classes: tuple[str, ...]) -> bool:
    low, high = (str(c).strip().lower() for c in classes)
    return (low, high) in OBVIOUS_POSITIVE or (low.startswith("<=") and high.startswith(">"))


def _check_references(analyzer: Fairness, groups: Mapping[str, list]) -> None:
    for feature, group in analyzer.reference_group.items():
        if feature not in groups:
            raise AuditInputError(f"fairness: reference_group given for {feature!r}, which is not a sensitive "
                                  f"feature; they are: {', '.join(groups)}")
        if str(group) not in map(str, groups[feature]):
            raise AuditInputError(f"fairness: reference_group {group!r} is not a group of {feature!r}; its "
                                  f"groups are: {', '.join(map(str, groups[feature]))}")


def _reference(analyzer: Fairness, feature: str, kept: list, by_group: pd.DataFrame):
    """The group the signed metrics compare against: the one named in `reference_group`, else the largest."""
    if feature not in analyzer.reference_group:
        return max(kept, key=lambda g: by_group.loc[g, "count"])
    named = next(g for g in by_group.index if str(g) == str(analyzer.reference_group[feature]))
    if named not in kept:
        raise AuditInputError(f"fairness: reference_group {named!r} of {feature!r} has fewer than "
                              f"{analyzer.min_group_size} rows; name a larger group")
    return named


def _split_by_size(analyzer: Fairness, feature: str, sizes: pd.Series, warnings: list[str]
                   ) -> tuple[list[str], list[str]]:
    """Groups of at least `min_group_size` rows, and the smaller ones (named in a warning); `sizes`: rows
    per group, in the groups' order."""
    kept = [g for g, n in sizes.items() if n >= analyzer.min_group_size]
    small = [g for g, n in sizes.items() if n < analyzer.min_group_size]
    if small:
        warnings.append(
            f"{feature}: group(s) {', '.join(map(repr, small[:6]))}{' ...' if len(small) > 6 else ''} have "
            f"fewer than {analyzer.min_group_size} rows; they are shown in the group table but left out of the "
            f"{feature} disparities{'' if INTERSECTION in feature else ' and of the worst case'}")
    if len(kept) < 2:
        warnings.append(f"{feature}: fewer than two groups of at least {analyzer.min_group_size} rows; "
                        "no disparity is computed for it")
    return kept, small


def _rows_per_disparity(analyzer: Fairness, by_group: pd.DataFrame, feature: str, positive: str,
                        warnings: list[str]) -> dict[str, pd.DataFrame]:
    """The group rows each disparity compares: a group with fewer than `min_positives` positive (negative)
    labels carries no true (false) positive rate, so it is left out of the disparities of that rate, and
    named in a warning. Disparities with fewer than two groups left are not computed."""
    lacking = {}
    for rate, (what, cells) in RATE_NEEDS.items():
        few = [str(g) for g in by_group.index[by_group[list(cells)].sum(axis=1) < analyzer.min_positives]]
        lacking[rate] = set(few)
        if few:
            uses = [m for m, (rates, _) in COMPARES.items() if rate in rates and m.endswith("difference")]
            warnings.append(
                f"{feature}: group(s) {', '.join(map(repr, few[:6]))}{' ...' if len(few) > 6 else ''} have fewer "
                f"than {analyzer.min_positives} {what} (label {positive!r} {'is' if what == 'positives' else 'is not'} "
                f"the true class); their {RATE_NAMES[rate]} is not measured and they are left out of "
                f"{' and '.join(m.removesuffix('_difference').replace('_', ' ') for m in uses)}")
    out = {}
    for metric, (rates, _) in COMPARES.items():
        drop = set().union(*(lacking.get(r, set()) for r in rates))
        usable = [g for g in by_group.index if str(g) not in drop]
        if len(usable) >= 2:
            out[metric] = by_group.loc[usable]
    return out


def _group_rows(analyzer: Fairness, by_group: pd.DataFrame, feature: str, cls: str | None) -> pd.DataFrame:
    table = by_group.reset_index(names="group")
    table.insert(0, "feature", feature)
    if cls is not None:
        table.insert(1, "class", cls)
    at = table.columns.get_loc("count") + 1
    table.insert(at, "small", table["count"] < analyzer.min_group_size)
    table.insert(at + 1, "few_positives", (table["fn"] + table["tp"]) < analyzer.min_positives)
    table.insert(at + 2, "few_negatives", (table["tn"] + table["fp"]) < analyzer.min_positives)
    return table
