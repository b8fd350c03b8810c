"""Fairness: per-group metrics, disparities with confidence intervals, text counterfactuals, a mitigation preview.

The outcome judged is "predicted as the positive class". Binary models: the positive
class is `positive_class`, by default the second class. Multi-class models: with
`positive_class` set, that class against the rest; without it, each class against the
rest, and every disparity is the worst over the classes.

Groups below `min_group_size` rows are listed in the group table (flag `small`) and
named in a warning, but left out of the disparities: a gap between a group of 8 and a
group of 8,000 is mostly noise, and must not decide a verdict silently. The unqualified
metric (`fairness.demographic_parity_difference`) is the worst case over the sensitive
features themselves; intersections (`fairness.sex&race.<metric>`) are reported under
their own names and kept out of it, since finer groups always lie further apart.

Every disparity gets a score confidence interval (`confidence`; audit.fairness.intervals:
Newcombe's hybrid score interval for gaps, the Katz log interval for ratios, a Bonferroni
adjustment for the worst case over groups, rates, classes and features), so a policy gate
can read its upper bound (`use = "upper"`); benchmarks/coverage.py checks its coverage by
simulation. Continuous sensitive columns are bucketed (audit.fairness.groups: age
into <25, 25-34, ..., >=65 by default; `bins={"age": (30, 50)}` overrides). Text models
also get counterfactual identity probes (audit.fairness.counterfactual), with or without
sensitive columns; binary outcomes get a threshold post-processing preview
(audit.fairness.mitigation) that never touches the model.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from audit.analyzers.base import Analyzer, MetricSpec, Result, register_analyzer
from audit.errors import AuditInputError
from audit.fairness import figures
from audit.fairness.intervals import worst_gap_interval, worst_ratio_interval
from audit.fairness.counterfactual import counterfactual_probe
from audit.fairness.groups import INTERSECTION, group_labels, with_intersections
from audit.fairness.metrics import (COMPARES, DISPARITIES, RATE_NAMES, WORSE_END, compared_groups, disparities,
                                   group_table, rate_counts)
from audit.fairness.mitigation import MITIGATION_TABLE, threshold_preview

WORST = "worst"  # the class label of a disparity taken as the worst over one-vs-rest classes
INTERVAL_METHOD = ("Newcombe's hybrid score interval (continuity-corrected) for gaps, the Katz log interval for "
                   "ratios; the worst case over the groups, rates, classes and features it compares with a "
                   "Bonferroni bound; the gate's side (upper for gaps, lower for ratios) errs at most 1/4 of 1 - "
                   "confidence")
RATE_NEEDS = {"tpr": ("positives", ("fn", "tp")), "fpr": ("negatives", ("tn", "fp"))}


def _higher_is_worse(metric: str) -> bool:
    return DISPARITIES[metric][1] == 0.0


def _spec(metric: str, scope: str) -> MetricSpec:
    kind = COMPARES[metric][1]
    how = ("largest minus smallest, unsigned, 0 = parity" if kind == "difference"
           else "smallest over largest, 1 = parity")
    return MetricSpec(f"{DISPARITIES[metric][0]} ({scope}; {how}; of the positive class, fairness.positive_class, "
                      "default the second class; the report names the worse-off and better-off group)",
                      "lower" if _higher_is_worse(metric) else "higher")


@register_analyzer
@dataclass(frozen=True, kw_only=True)
class Fairness(Analyzer):
    """Does the model treat the groups of each sensitive attribute differently, and how sure are we?"""

    positive_class: str | int | None = None
    min_group_size: int = 30
    min_positives: int = 10  # a group's TPR (FPR) needs this many positive (negative) labels
    intersections: int = 2  # cross up to this many sensitive features; 1 for none
    bins: Mapping[str, tuple[float, ...]] = field(default_factory=dict)
    confidence: float = 0.95
    mitigation: bool = True
    samples: int = 500  # held-out sentences the text counterfactual probe reads

    name = "fairness"
    title = "Fairness"
    description = ("per-group metrics and disparities with score confidence intervals, intersections, "
                   "text counterfactual probes, threshold post-processing preview")
    metric_prefix = "fairness"
    metrics = {
        **{f"fairness.{m}": _spec(m, "worst case over the sensitive features") for m in DISPARITIES},
        **{f"fairness.<feature>.{m}": _spec(m, "one sensitive feature or intersection") for m in DISPARITIES},
        "fairness.counterfactual_flip_rate": MetricSpec(
            "text: largest share, over identity pairs, of predictions that change class when only the "
            "identity term changes", "lower"),
        "fairness.counterfactual_max_delta": MetricSpec(
            "text: largest change in a predicted class probability when only the identity term changes", "lower"),
    }

    def supports(self, model, data) -> bool:
        return len(data.sensitive.columns) > 0 or model.modality == "text"

    def run(self, model, data, *, seed: int = 0) -> Result:
        joined = [name for name in data.sensitive_names if INTERSECTION in str(name)]
        if joined:
            raise AuditInputError(f"fairness: sensitive column {joined[0]!r} contains {INTERSECTION!r}, which joins "
                                  "the names of intersections; rename the column")
        parts = []
        if len(data.sensitive.columns):
            parts.append(self._groups(model, data, seed))
        if model.modality == "text":
            targets = self.targets(model.classes)
            parts.append(counterfactual_probe(model, data, samples=self.samples, seed=seed,
                                              positive=targets[0] if len(targets) == 1 else None))
        merged = {key: {} for key in ("metrics", "intervals", "tables", "details")}
        figs, warnings = [], []
        for part in parts:
            for key in merged:
                merged[key].update(part[key])
            figs.extend(part["figures"])
            warnings.extend(part["warnings"])
        return Result(analyzer=self.name, metrics=merged["metrics"], intervals=merged["intervals"],
                      tables=merged["tables"], figures=tuple(figs), config=self.config(),
                      details=merged["details"], warnings=tuple(warnings))

    def __post_init__(self) -> None:
        if self.min_group_size < 1:
            raise AuditInputError(f"fairness: min_group_size must be at least 1, not {self.min_group_size}")
        if self.min_positives < 1:
            raise AuditInputError(f"fairness: min_positives must be at least 1, not {self.min_positives}")
        if not 0 < self.confidence < 1:
            raise AuditInputError(f"fairness: confidence must lie between 0 and 1, not {self.confidence}")
        if self.intersections < 1:
            raise AuditInputError(f"fairness: intersections must be at least 1, not {self.intersections}")
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

    def _groups(self, model, data, seed: int) -> dict:
        proba, labels = model.predict_proba(data), model.labels(data)
        pred = proba.argmax(axis=1)
        classes = model.classes
        targets = self.targets(classes)
        single = group_labels(data.sensitive, self.bins)
        groups = with_intersections(single, min(self.intersections, len(single.columns)))
        tables, estimates, compared_rows, used, warnings = [], {}, {}, {}, []
        for feature in groups.columns:
            column = pd.Series(groups[feature], name=feature)
            kept, small = self._split_by_size(column, warnings)
            used[feature] = (kept, small)
            for target in targets:
                y_true, y_pred = (labels == target).astype(int), (pred == target).astype(int)
                by_group = group_table(y_true, y_pred, proba[:, target], column).reindex(column.cat.categories)
                if len(kept) >= 2:
                    rows_of = self._rows_per_disparity(by_group.loc[kept], feature, classes[target], warnings)
                    compared_rows[feature, target] = rows_of
                    estimates[feature, target] = {m: disparities(t)[m] for m, t in rows_of.items()}
                tables.append(self._group_rows(by_group, feature, classes[target] if len(targets) > 1 else None))
        metrics, intervals, rows, compared = self._summarize(estimates, compared_rows, list(single.columns),
                                                             targets, classes)
        disparity_frame = pd.DataFrame(rows)
        if len(disparity_frame):
            disparity_frame["excluded_groups"] = disparity_frame["feature"].map(lambda f: ", ".join(used[f][1]))
        rows_of = pd.concat(tables, ignore_index=True)
        crossed = rows_of["feature"].str.contains(INTERSECTION, regex=False)
        tables = {"groups": rows_of[~crossed].reset_index(drop=True), "disparities": disparity_frame}
        if crossed.any():
            tables["intersectional_groups"] = rows_of[crossed].reset_index(drop=True)
        details = {"positive_classes": [classes[t] for t in targets], "compared": compared,
                   "confidence": self.confidence, "interval_method": INTERVAL_METHOD,
                   "min_group_size": self.min_group_size, "min_positives": self.min_positives,
                   "groups_used": {f: list(k) for f, (k, _) in used.items()},
                   "groups_excluded": {f: list(s) for f, (_, s) in used.items() if s}}
        first = targets[0]
        if self.mitigation and len(targets) == 1:
            tables[MITIGATION_TABLE] = threshold_preview(
                proba[:, first], (labels == first).astype(int), (pred == first).astype(int), single,
                {f: used[f][0] for f in single.columns}, seed=seed)
            details["mitigation_preview"] = (
                "PREVIEW, the model is not changed: fairlearn ThresholdOptimizer fitted on the model's "
                "positive-class scores of a seeded half of the audited rows, evaluated on the other half")
        elif self.mitigation:
            details["mitigation_preview"] = "not run: threshold post-processing needs one positive class"
        figs = [figures.disparity_chart(disparity_frame, self.confidence)] if len(disparity_frame) else []
        figs += [figures.group_confusions(f, groups[f], labels, pred, classes, used[f][0])
                 for f in single.columns if used[f][0]]
        figs += [figures.intersection_map(single[f.split(INTERSECTION)[0]], single[f.split(INTERSECTION)[1]],
                                          pred == first, classes[first], self.min_group_size)
                 for f in groups.columns if f.count(INTERSECTION) == 1]
        return {"metrics": metrics, "intervals": intervals, "tables": tables, "details": details,
                "figures": figs, "warnings": warnings}

    def _split_by_size(self, column: pd.Series, warnings: list[str]) -> tuple[list[str], list[str]]:
        """Groups of at least `min_group_size` rows, and the smaller ones (named in a warning)."""
        sizes = column.value_counts()
        kept = [g for g in column.cat.categories if sizes[g] >= self.min_group_size]
        small = [g for g in column.cat.categories if sizes[g] < self.min_group_size]
        feature = column.name
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
        """Metrics, intervals, disparity-table rows and what each compares, per feature (worst over classes) and
        over the single features. A worst case's interval is taken over every comparison it is the worst of
        (audit.fairness.intervals)."""
        metrics, intervals, rows, compared = {}, {}, [], {}
        per_feature = {}
        for feature in dict.fromkeys(f for f, _ in estimates):
            for metric in DISPARITIES:
                worse = np.fmax if _higher_is_worse(metric) else np.fmin
                parts = [(t, estimates[feature, t][metric], compared_rows[feature, t][metric])
                         for t in targets if metric in estimates.get((feature, t), {})]
                if not parts:
                    continue
                if len(targets) > 1:
                    for t, value, by_group in parts:
                        rows.append(self._row(feature, classes[t], metric, value, self._rates(by_group, metric),
                                              by_group))
                value = float(worse.reduce(np.array([v for _, v, _ in parts])))
                rates = [r for _, _, by_group in parts for r in self._rates(by_group, metric)]
                decisive = next((p for p in parts if p[1] == value), parts[0])
                per_feature[feature, metric] = (value, rates, decisive)
                rows.append(self._row(feature, WORST if len(targets) > 1 else classes[targets[0]], metric,
                                      value, rates, decisive[2]))
                name = f"fairness.{feature}.{metric}"
                metrics[name] = value
                intervals[name] = rows[-1]["low"], rows[-1]["high"]
                compared[name] = self._compared(feature, metric, decisive, classes)
        for metric in DISPARITIES:
            candidates = [(f, *per_feature[f, metric]) for f in features if (f, metric) in per_feature]
            if not candidates:
                continue
            worse = np.fmax if _higher_is_worse(metric) else np.fmin
            value = float(worse.reduce(np.array([v for _, v, _, _ in candidates])))
            name = f"fairness.{metric}"
            metrics[name] = value
            intervals[name] = self._interval(metric, value, [r for _, _, rs, _ in candidates for r in rs])
            feature, _, _, decisive = next((c for c in candidates if c[1] == value), candidates[0])
            compared[name] = self._compared(feature, metric, decisive, classes)
        return metrics, intervals, rows, compared

    @staticmethod
    def _compared(feature: str, metric: str, decisive, classes) -> dict:
        """What a disparity compares, in the words the report and `audit metrics` show."""
        target, _, by_group = decisive
        groups = compared_groups(by_group, metric)
        rate, kind = RATE_NAMES[groups["rate"]], COMPARES[metric][1]
        worse_end = "lower" if WORSE_END[groups["rate"]] == "low" else "higher"
        how = ("largest minus smallest, unsigned: 0 is parity" if kind == "difference"
               else "smallest over largest: 1 is parity")
        of = "" if groups["rate"] == "accuracy" else f" of {classes[target]!r}"
        direction = (f"{rate}{of} by {feature}: {groups['worse_group']!r} "
                     f"{groups['worse_rate']:.3f} is worse off ({worse_end}) than {groups['better_group']!r} "
                     f"{groups['better_rate']:.3f}; {kind} = {how}")
        return {"feature": feature, "worse_group": groups["worse_group"], "better_group": groups["better_group"],
                "rate": groups["rate"], "direction": direction, "positive_class": classes[target]}

    @staticmethod
    def _rates(by_group: pd.DataFrame, metric: str) -> list[tuple[np.ndarray, np.ndarray]]:
        return [rate_counts(by_group, rate) for rate in COMPARES[metric][0]]

    def _interval(self, metric: str, value: float, rates) -> tuple[float, float]:
        if not np.isfinite(value):
            return float("nan"), float("nan")
        worst = worst_gap_interval if COMPARES[metric][1] == "difference" else worst_ratio_interval
        return worst(rates, self.confidence)

    def _row(self, feature, cls, metric, value, rates, by_group) -> dict:
        low, high = self._interval(metric, value, rates)
        groups = compared_groups(by_group, metric)
        return {"feature": feature, "class": cls, "metric": metric, "value": value, "low": low, "high": high,
                "worse_group": groups["worse_group"], "better_group": groups["better_group"],
                "groups_compared": len(by_group)}
