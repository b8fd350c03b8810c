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
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from audit.core.analyzer import Analyzer, Tally, register_analyzer

from audit.core.result import MetricSpec, Result
from audit._util.errors import AuditInputError
from audit.analyzers.fairness.findings import fairness_findings
from audit.analyzers.fairness import figures
from audit.analyzers.fairness.summary import (Attribute, Degenerate, Disparity, FairnessSummary, GroupRate,
                                              compared_pair, group_rates)
from audit.methods.fairness.intervals import worst_gap_interval, worst_ratio_interval
from audit.methods.fairness.counterfactual import counterfactual_probe
from audit.core.groups import (INTERSECTION, QUARTILES, SensitiveValues, apply_rules, attribute_kind, bucketed,
                               group_rules, with_intersections)
from audit.methods.fairness.metrics import (COMPARES, DISPARITIES, RATE_NAMES, disparities, outcome_cells,
                                            rate_counts, signed_against, table_from_cells)
from audit.methods.fairness.preview import MITIGATION_TABLE, threshold_preview
from audit.core.reservoir import Reservoir

WORST = "worst"  # the class label of a disparity taken as the worst over one-vs-rest classes
INTERVAL_METHOD = ("Newcombe's hybrid score interval (continuity-corrected) for gaps, the MOVER log interval from the "
                   "same Wilson limits for ratios; the worst case over the groups, rates, classes and features it compares with a "
                   "Bonferroni bound; the gate's side (upper for gaps, lower for ratios) errs at most 1/4 of 1 - "
                   "confidence")
RATE_NEEDS = {"tpr": ("positives", ("fn", "tp")), "fpr": ("negatives", ("tn", "fp"))}
SIGNED_TABLE = "signed_against_reference_(aif360_conventions)"
DEGENERATE_SHARE = 0.95  # a model predicting one class for at least this share of rows barely discriminates
PREVIEW_ROWS = 100_000  # rows the threshold preview is fitted and evaluated on: beyond them, a seeded sample
ALL_CLASSES = "all classes"  # the class label of the multiclass accuracy gap
#: Binary labels whose second class is plainly the positive outcome; for others (1/2, good/bad) the run says
#: which class it took.
OBVIOUS_POSITIVE = {("0", "1"), ("false", "true"), ("no", "yes"), ("n", "y"), ("negative", "positive"),
                    ("neg", "pos")}


def _higher_is_worse(metric: str) -> bool:
    return DISPARITIES[metric][1] == 0.0


def _spec(metric: str, scope: str) -> MetricSpec:
    kind = COMPARES[metric][1]
    how = ("largest minus smallest, unsigned, 0 = parity" if kind == "difference"
           else "smallest over largest, 1 = parity")
    return MetricSpec(f"{DISPARITIES[metric][0]} ({scope}; {how}; of the positive class, fairness.positive_class, "
                      "default the second class; the report names the worse-off and better-off group)",
                      "lower" if _higher_is_worse(metric) else "higher", interval=True)


def _degenerate(predicted: np.ndarray, classes) -> Degenerate | None:
    """The class predicted for at least DEGENERATE_SHARE of the rows (`predicted`: rows per class), with its
    share; None if there is none."""
    rows = int(predicted.sum())
    share = predicted.max() / max(rows, 1)
    return Degenerate(classes[int(predicted.argmax())], float(share), rows) if share >= DEGENERATE_SHARE else None


def _obvious_positive(classes: tuple[str, ...]) -> bool:
    low, high = (str(c).strip().lower() for c in classes)
    return (low, high) in OBVIOUS_POSITIVE or (low.startswith("<=") and high.startswith(">"))


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

    def targets(self, classes: tuple[str, ...]) -> list[int]:
        """The class indices judged as "positive", one outcome each."""
        if self.positive_class is not None:
            positive = str(self.positive_class)  # `--set fairness.positive_class=1` arrives as an int
            if positive not in classes:
                raise AuditInputError(
                    f"fairness: positive_class {positive!r} is not a class of the model {list(classes)}")
            return [classes.index(positive)]
        return [1] if len(classes) == 2 else list(range(len(classes)))

    # -- group metrics and disparities ------------------------------------------------------

    def _groups(self, tally: FairnessTally) -> dict:
        classes, targets = tally.classes, tally.targets
        groups = tally.present_groups()
        tables, estimates, compared_rows, used, warnings, signed, references = [], {}, {}, {}, [], [], {}
        base_rates = {}
        self._check_references(groups)
        bins = bucketed(tally.rules)
        for feature, (edges, rule) in bins.items():
            if rule == QUARTILES:
                warnings.append(f"{feature}: continuous, cut at this data's quartiles {list(edges)}, which differ "
                                f"from one data set to the next; give fixed edges (fairness.bins) to compare runs")
        assumed = (classes[1] if self.positive_class is None and len(classes) == 2 and not _obvious_positive(classes)
                   else None)
        for feature, names in groups.items():
            kept, small = self._split_by_size(feature, tally.sizes(feature), warnings)
            used[feature] = (kept, small)
            if len(classes) > 2 and len(kept) >= 2:
                compared_rows[feature, None] = tally.accuracy_table(feature).loc[kept]
            for target in targets:
                by_group = tally.group_table(feature, target).reindex(names)
                if len(kept) >= 2:
                    rows_of = self._rows_per_disparity(by_group.loc[kept], feature, classes[target], warnings)
                    compared_rows[feature, target] = rows_of
                    estimates[feature, target] = {m: disparities(t)[m] for m, t in rows_of.items()}
                    references[feature] = self._reference(feature, kept, by_group)
                    base_rates[feature, classes[target]] = tuple(
                        GroupRate(str(g), float(r["base_rate"]), float(r["fn"] + r["tp"]), float(r["count"]))
                        for g, r in by_group.loc[kept].iterrows())
                    table = signed_against(by_group.loc[kept], references[feature])
                    table.insert(0, "feature", feature)
                    table.insert(1, "class", classes[target])
                    signed.append(table)
                tables.append(self._group_rows(by_group, feature, classes[target] if len(targets) > 1 else None))
        metrics, intervals, rows, worst, per_class = self._summarize(estimates, compared_rows, tally.single, targets,
                                                                     classes)
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
                   "confidence": self.confidence, "interval_method": INTERVAL_METHOD,
                   "min_group_size": self.min_group_size, "min_positives": self.min_positives,
                   "groups_used": {f: list(k) for f, (k, _) in used.items()},
                   "groups_excluded": {f: list(s) for f, (_, s) in used.items() if s}}
        first = targets[0]
        rows_seen = int(tally.predicted.sum())
        preview = ""
        if self.mitigation and len(targets) == 1:
            outcome, single = tally.preview.sample()
            score, y_true, y_pred = outcome[:, 0], outcome[:, 1].astype(int), outcome[:, 2].astype(int)
            tables[MITIGATION_TABLE] = threshold_preview(score, y_true, y_pred, single,
                                                         {f: used[f][0] for f in tally.single}, seed=tally.seed)
            of = (f"the {rows_seen:,} audited rows" if len(score) == rows_seen else
                  f"a seeded sample of {len(score):,} of the {rows_seen:,} audited rows")
            preview = ("PREVIEW, the model is not changed: fairlearn ThresholdOptimizer fitted on the model's "
                       f"positive-class scores of a seeded half of {of}, evaluated on the other half")
            details["mitigation_preview"] = preview
        elif self.mitigation:
            details["mitigation_preview"] = "not run: threshold post-processing needs one positive class"
        figs = [figures.disparity_chart(disparity_frame, self.confidence)] if len(disparity_frame) else []
        figs += [figures.group_confusions(f, tally.confusions(f), classes, used[f][0])
                 for f in tally.single if used[f][0]]
        figs += [figures.intersection_map(*tally.selection(f, first), classes[first], self.min_group_size)
                 for f in groups if f.count(INTERSECTION) == 1]
        degenerate = _degenerate(tally.predicted, classes)
        if degenerate:
            details["degenerate"] = {"class": degenerate.cls, "share": degenerate.share}
        summary = FairnessSummary(
            classes=tuple(classes), positive_classes=tuple(classes[t] for t in targets), assumed_positive=assumed,
            attributes={f: Attribute(f, attribute_kind(f), tuple(map(str, kept)),
                                     tuple((str(g), f"fewer than {self.min_group_size} rows") for g in small),
                                     INTERSECTION in f) for f, (kept, small) in used.items()},
            worst=worst, per_class=per_class, base_rates=base_rates, degenerate=degenerate, preview=preview,
            confidence=self.confidence)
        return {"metrics": metrics, "intervals": intervals, "tables": tables, "details": details,
                "figures": figs, "warnings": warnings, "summary": summary}

    def _check_references(self, groups: Mapping[str, list]) -> None:
        for feature, group in self.reference_group.items():
            if feature not in groups:
                raise AuditInputError(f"fairness: reference_group given for {feature!r}, which is not a sensitive "
                                      f"feature; they are: {', '.join(groups)}")
            if str(group) not in map(str, groups[feature]):
                raise AuditInputError(f"fairness: reference_group {group!r} is not a group of {feature!r}; its "
                                      f"groups are: {', '.join(map(str, groups[feature]))}")

    def _reference(self, feature: str, kept: list, by_group: pd.DataFrame):
        """The group the signed metrics compare against: the one named in `reference_group`, else the largest."""
        if feature not in self.reference_group:
            return max(kept, key=lambda g: by_group.loc[g, "count"])
        named = next(g for g in by_group.index if str(g) == str(self.reference_group[feature]))
        if named not in kept:
            raise AuditInputError(f"fairness: reference_group {named!r} of {feature!r} has fewer than "
                                  f"{self.min_group_size} rows; name a larger group")
        return named

    def _split_by_size(self, feature: str, sizes: pd.Series, warnings: list[str]) -> tuple[list[str], list[str]]:
        """Groups of at least `min_group_size` rows, and the smaller ones (named in a warning); `sizes`: rows
        per group, in the groups' order."""
        kept = [g for g, n in sizes.items() if n >= self.min_group_size]
        small = [g for g, n in sizes.items() if n < self.min_group_size]
        if small:
            warnings.append(
                f"{feature}: group(s) {', '.join(map(repr, small[:6]))}{' ...' if len(small) > 6 else ''} have "
                f"fewer than {self.min_group_size} rows; they are shown in the group table but left out of the "
                f"{feature} disparities{'' if INTERSECTION in feature else ' and of the worst case'}")
        if len(kept) < 2:
            warnings.append(f"{feature}: fewer than two groups of at least {self.min_group_size} rows; "
                            "no disparity is computed for it")
        return kept, small

    def _rows_per_disparity(self, by_group: pd.DataFrame, feature: str, positive: str, warnings: list[str]
                            ) -> dict[str, pd.DataFrame]:
        """The group rows each disparity compares: a group with fewer than `min_positives` positive (negative)
        labels carries no true (false) positive rate, so it is left out of the disparities of that rate, and
        named in a warning. Disparities with fewer than two groups left are not computed."""
        lacking = {}
        for rate, (what, cells) in RATE_NEEDS.items():
            few = [str(g) for g in by_group.index[by_group[list(cells)].sum(axis=1) < self.min_positives]]
            lacking[rate] = set(few)
            if few:
                uses = [m for m, (rates, _) in COMPARES.items() if rate in rates and m.endswith("difference")]
                warnings.append(
                    f"{feature}: group(s) {', '.join(map(repr, few[:6]))}{' ...' if len(few) > 6 else ''} have fewer "
                    f"than {self.min_positives} {what} (label {positive!r} {'is' if what == 'positives' else 'is not'} "
                    f"the true class); their {RATE_NAMES[rate]} is not measured and they are left out of "
                    f"{' and '.join(m.removesuffix('_difference').replace('_', ' ') for m in uses)}")
        out = {}
        for metric, (rates, _) in COMPARES.items():
            drop = set().union(*(lacking.get(r, set()) for r in rates))
            usable = [g for g in by_group.index if str(g) not in drop]
            if len(usable) >= 2:
                out[metric] = by_group.loc[usable]
        return out

    def _group_rows(self, by_group: pd.DataFrame, feature: str, cls: str | None) -> pd.DataFrame:
        table = by_group.reset_index(names="group")
        table.insert(0, "feature", feature)
        if cls is not None:
            table.insert(1, "class", cls)
        at = table.columns.get_loc("count") + 1
        table.insert(at, "small", table["count"] < self.min_group_size)
        table.insert(at + 1, "few_positives", (table["fn"] + table["tp"]) < self.min_positives)
        table.insert(at + 2, "few_negatives", (table["tn"] + table["fp"]) < self.min_positives)
        return table

    def _summarize(self, estimates, compared_rows, features, targets, classes):
        """Metrics, intervals, disparity-table rows and the decisive `Disparity` of each metric, per feature (worst
        over classes) and over the single features, and the per-class disparities of a multiclass run. A worst
        case's interval is taken over every comparison it is the worst of (audit.methods.fairness.intervals)."""
        metrics, intervals, rows, worst, per_class = {}, {}, [], {}, []
        per_feature = {}
        for feature in dict.fromkeys(f for f, _ in estimates):
            for metric in DISPARITIES:
                worse = np.fmax if _higher_is_worse(metric) else np.fmin
                parts = [(t, estimates[feature, t][metric], compared_rows[feature, t][metric])
                         for t in targets if metric in estimates.get((feature, t), {})]
                if (feature, None) in compared_rows and metric == "accuracy_difference":  # multiclass accuracy
                    table = compared_rows[feature, None]
                    parts = [(None, float(table["accuracy"].max() - table["accuracy"].min()), table)]
                if not parts:
                    continue
                if len(targets) > 1 and parts[0][0] is not None:
                    for part in parts:
                        per_class.append(self._disparity(feature, metric, part, classes, part[1],
                                                         self._rates(part[2], metric)))
                        rows.append(self._row(per_class[-1], classes[part[0]], len(part[2])))
                value = float(worse.reduce(np.array([v for _, v, _ in parts])))
                rates = [r for _, _, by_group in parts for r in self._rates(by_group, metric)]
                decisive = next((p for p in parts if p[1] == value), parts[0])
                per_feature[feature, metric] = (value, rates, decisive)
                name = f"fairness.{feature}.{metric}"
                worst[name] = self._disparity(feature, metric, decisive, classes, value, rates)
                label = ALL_CLASSES if decisive[0] is None else classes[targets[0]] if len(targets) == 1 else WORST
                rows.append(self._row(worst[name], label, len(decisive[2])))
                metrics[name], intervals[name] = value, worst[name].interval
        for metric in DISPARITIES:
            candidates = [(f, *per_feature[f, metric]) for f in features if (f, metric) in per_feature]
            if not candidates:
                metrics[f"fairness.{metric}"] = math.nan
                intervals[f"fairness.{metric}"] = (math.nan, math.nan)
                continue
            worse = np.fmax if _higher_is_worse(metric) else np.fmin
            value = float(worse.reduce(np.array([v for _, v, _, _ in candidates])))
            name = f"fairness.{metric}"
            feature, _, _, decisive = next((c for c in candidates if c[1] == value), candidates[0])
            worst[name] = self._disparity(feature, metric, decisive, classes, value,
                                          [r for _, _, rs, _ in candidates for r in rs])
            metrics[name], intervals[name] = value, worst[name].interval
        return metrics, intervals, rows, worst, tuple(per_class)

    def _disparity(self, feature: str, metric: str, decisive, classes, value: float, rates) -> Disparity:
        target, _, by_group = decisive
        pair = compared_pair(by_group, metric)
        return Disparity(feature, metric, None if target is None else classes[target], value,
                         self._interval(metric, value, rates), pair, group_rates(by_group, pair.rate))

    @staticmethod
    def _rates(by_group: pd.DataFrame, metric: str) -> list[tuple[np.ndarray, np.ndarray]]:
        return [rate_counts(by_group, rate) for rate in COMPARES[metric][0]]

    def _interval(self, metric: str, value: float, rates) -> tuple[float, float]:
        if not np.isfinite(value):
            return float("nan"), float("nan")
        worst = worst_gap_interval if COMPARES[metric][1] == "difference" else worst_ratio_interval
        return worst(rates, self.confidence)

    @staticmethod
    def _row(disparity: Disparity, cls, groups: int) -> dict:
        d, (low, high) = disparity, disparity.interval
        return {"feature": d.feature, "class": cls, "metric": d.metric, "value": d.value, "low": low, "high": high,
                "worse_group": d.pair.worse, "better_group": d.pair.better, "groups_compared": groups,
                "direction": d.direction}


class FairnessTally(Tally):
    """What the fairness numbers are functions of, added up over chunks of rows: per group of every sensitive
    feature and intersection and per positive class, the rows by true and predicted outcome and calibration
    bin, with their scores summed (audit.methods.fairness.metrics.outcome_cells); per group of a single feature its
    confusion matrix over all classes; the rows predicted per class; and, for the threshold preview, a seeded
    sample of PREVIEW_ROWS rows' scores, outcomes and groups (every row below that many). Groups are decided
    once, from every sensitive value of the data (`values`), so a chunk that lacks a group changes nothing."""

    def __init__(self, analyzer: Fairness, model, values: SensitiveValues, seed: int):
        joined = [name for name in values.counts if INTERSECTION in name]
        if joined:
            raise AuditInputError(f"fairness: sensitive column {joined[0]!r} contains {INTERSECTION!r}, which joins "
                                  "the names of intersections; rename the column")
        self.analyzer, self.model, self.seed = analyzer, model, seed
        self.sample_rows = analyzer.samples if model.modality == "text" else 0  # the counterfactual probe's
        self.classes = model.classes
        self.targets = analyzer.targets(self.classes)
        self.rules = group_rules(values, analyzer.bins) if values.counts else {}
        self.single = list(self.rules)
        self.order = min(analyzer.intersections, len(self.single))
        empty = pd.DataFrame({name: pd.Categorical([], categories=rule.groups) for name, rule in self.rules.items()})
        self.groups = {f: list(column.cat.categories)
                       for f, column in with_intersections(empty, self.order, drop_unused=False).items()}
        k = len(self.classes)
        self.cells = {(f, t): outcome_cells(np.empty(0, dtype=int), len(g), [], [], [])
                      for f, g in self.groups.items() for t in self.targets}
        self.correct = {f: np.zeros((2, len(g))) for f, g in self.groups.items()}
        self.confusion = {f: np.zeros((len(self.groups[f]), k, k), dtype=np.int64) for f in self.single}
        self.predicted = np.zeros(k, dtype=np.int64)
        self.preview = Reservoir(PREVIEW_ROWS, seed, take=_take_rows, join=_join_rows)

    def add(self, chunk, proba, start):
        labels, pred = self.model.labels(chunk), proba.argmax(axis=1)
        single = apply_rules(chunk.sensitive, self.rules)
        k = len(self.classes)
        for f, column in with_intersections(single, self.order, drop_unused=False).items():
            codes, n = column.cat.codes.to_numpy(), len(self.groups[f])
            for t in self.targets:
                weight, score = outcome_cells(codes, n, labels == t, pred == t, proba[:, t])
                self.cells[f, t][0][...] += weight
                self.cells[f, t][1][...] += score
            self.correct[f] += [np.bincount(codes, minlength=n), np.bincount(codes, weights=labels == pred, minlength=n)]
            if f in self.confusion:
                self.confusion[f] += np.bincount((codes * k + labels) * k + pred, minlength=n * k * k).reshape(n, k, k)
        self.predicted += np.bincount(pred, minlength=k)
        if self.analyzer.mitigation and len(self.targets) == 1:
            first = self.targets[0]
            outcome = np.column_stack([proba[:, first], labels == first, pred == first])
            self.preview.add((outcome, single), start, len(labels))

    def result(self, sample) -> Result:
        analyzer, parts = self.analyzer, []
        if self.rules:
            parts.append(analyzer._groups(self))
        if self.model.modality == "text":
            probe = counterfactual_probe(self.model, sample, samples=analyzer.samples, seed=self.seed,
                                         positive=self.targets[0] if len(self.targets) == 1 else None,
                                         confidence=analyzer.confidence)
            if "counterfactual_pairs" in probe["tables"]:
                probe["figures"] = [figures.counterfactual_chart(probe["tables"]["counterfactual_pairs"])]
            parts.append(probe)
        merged = {key: {} for key in ("metrics", "intervals", "tables", "details")}
        figs, warnings = [], []
        for part in parts:
            for key in merged:
                merged[key].update(part[key])
            figs.extend(part["figures"])
            warnings.extend(part["warnings"])
        summary = next((part["summary"] for part in parts if "summary" in part), None)
        drivers, caveat, notes = {}, "", {}
        if summary is not None:
            drivers = {name: d.driver for name, d in summary.worst.items() if name.count(".") == 1}
            caveat = summary.degenerate.words if summary.degenerate else ""
            notes = {MITIGATION_TABLE: summary.preview} if summary.preview else {}
        return Result(analyzer=analyzer.name, metrics=merged["metrics"], intervals=merged["intervals"],
                      tables=merged["tables"], figures=tuple(figs), config=analyzer.config(),
                      details=merged["details"], warnings=tuple(warnings), summary=summary, drivers=drivers,
                      caveat=caveat, notes=notes)

    # -- the counts as tables ---------------------------------------------------------------

    def _rows(self, feature: str) -> np.ndarray:
        return self.correct[feature][0]

    def present_groups(self) -> dict[str, list[str]]:
        """The groups of each feature that hold rows (an intersection need not hold every combination)."""
        return {f: [g for g, n in zip(groups, self._rows(f)) if n > 0] for f, groups in self.groups.items()}

    def sizes(self, feature: str) -> pd.Series:
        rows = pd.Series(self._rows(feature).astype(np.int64), index=self.groups[feature])
        return rows[rows > 0]

    def group_table(self, feature: str, target: int) -> pd.DataFrame:
        weight, score = self.cells[feature, target]
        held = self._rows(feature) > 0
        return table_from_cells(weight[held], score[held], np.asarray(self.groups[feature], dtype=object)[held],
                                feature)

    def accuracy_table(self, feature: str) -> pd.DataFrame:
        """Per group: rows, multiclass accuracy, and the correct and wrong counts as the cells the accuracy rate
        reads (tp + tn correct out of all four)."""
        rows, correct = self.correct[feature]
        table = pd.DataFrame({"count": rows, "accuracy": correct / np.maximum(rows, 1), "tn": 0.0, "fp": 0.0,
                              "fn": rows - correct, "tp": correct}, index=pd.Index(self.groups[feature], name="group"))
        return table[rows > 0]

    def confusions(self, feature: str) -> dict[str, np.ndarray]:
        return {g: m for g, m in zip(self.groups[feature], self.confusion[feature]) if m.sum()}

    def selection(self, feature: str, target: int) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Rows and rows predicted `target`, per pair of groups of the two features crossed in `feature`."""
        first, second = feature.split(INTERSECTION)
        weight = self.cells[feature, target][0]
        shape = (len(self.groups[first]), len(self.groups[second]))
        index = pd.Index(self.groups[first], name=first)
        columns = pd.Index(self.groups[second], name=second)
        return (pd.DataFrame(weight.sum(axis=(1, 2, 3)).reshape(shape), index=index, columns=columns),
                pd.DataFrame(weight[:, :, 1].sum(axis=(1, 2)).reshape(shape), index=index, columns=columns))


def _take_rows(held, at):
    outcome, groups = held
    return outcome[at], groups.iloc[at].reset_index(drop=True)


def _join_rows(parts):
    return np.concatenate([o for o, _ in parts]), pd.concat([g for _, g in parts], ignore_index=True)
