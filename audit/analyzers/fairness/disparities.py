"""The disparities of the fairness section: per feature the worst over the positive classes, over the single
features the worst case, each with its score interval (audit.methods.fairness.intervals) and its decisive pair of
groups, and the rows of the disparities table."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from audit.analyzers.fairness.summary import Disparity, compared_pair, group_rates
from audit.methods.fairness.intervals import worst_gap_interval, worst_ratio_interval
from audit.methods.fairness.metrics import COMPARES, DISPARITIES, rate_counts

WORST = "worst"  # the class label of a disparity taken as the worst over one-vs-rest classes
ALL_CLASSES = "all classes"  # the class label of the multiclass accuracy gap
INTERVAL_METHOD = ("Newcombe's hybrid score interval (continuity-corrected) for gaps, the MOVER log interval from the "
                   "same Wilson limits for ratios; the worst case over the groups, rates, classes and features it "
                   "compares with a Bonferroni bound; the gate's side (upper for gaps, lower for ratios) errs at most "
                   "1/4 of 1 - confidence")


def higher_is_worse(metric: str) -> bool:
    return DISPARITIES[metric][1] == 0.0


def summarize(estimates, compared_rows, features, targets, classes, confidence: float):
    """Metrics, intervals, disparity-table rows and the decisive `Disparity` of each metric, per feature (worst
    over classes) and over the single features, and the per-class disparities of a multiclass run. A worst
    case's interval is taken over every comparison it is the worst of (audit.methods.fairness.intervals)."""
    metrics, intervals, rows, worst, per_class = {}, {}, [], {}, []
    per_feature = {}
    for feature in dict.fromkeys(f for f, _ in estimates):
        for metric in DISPARITIES:
            worse = np.fmax if higher_is_worse(metric) else np.fmin
            parts = [(t, estimates[feature, t][metric], compared_rows[feature, t][metric])
                     for t in targets if metric in estimates.get((feature, t), {})]
            if (feature, None) in compared_rows and metric == "accuracy_difference":  # multiclass accuracy
                table = compared_rows[feature, None]
                parts = [(None, float(table["accuracy"].max() - table["accuracy"].min()), table)]
            if not parts:
                continue
            if len(targets) > 1 and parts[0][0] is not None:
                for part in parts:
                    per_class.append(_disparity(feature, metric, part, classes, part[1], _rates(part[2], metric),
                                                confidence))
                    rows.append(_row(per_class[-1], classes[part[0]], len(part[2])))
            value = float(worse.reduce(np.array([v for _, v, _ in parts])))
            rates = [r for _, _, by_group in parts for r in _rates(by_group, metric)]
            decisive = next((p for p in parts if p[1] == value), parts[0])
            per_feature[feature, metric] = (value, rates, decisive)
            name = f"fairness.{feature}.{metric}"
            worst[name] = _disparity(feature, metric, decisive, classes, value, rates, confidence)
            label = ALL_CLASSES if decisive[0] is None else classes[targets[0]] if len(targets) == 1 else WORST
            rows.append(_row(worst[name], label, len(decisive[2])))
            metrics[name], intervals[name] = value, worst[name].interval
    for metric in DISPARITIES:
        candidates = [(f, *per_feature[f, metric]) for f in features if (f, metric) in per_feature]
        if not candidates:
            metrics[f"fairness.{metric}"] = math.nan
            intervals[f"fairness.{metric}"] = (math.nan, math.nan)
            continue
        worse = np.fmax if higher_is_worse(metric) else np.fmin
        value = float(worse.reduce(np.array([v for _, v, _, _ in candidates])))
        name = f"fairness.{metric}"
        feature, _, _, decisive = next((c for c in candidates if c[1] == value), candidates[0])
        worst[name] = _disparity(feature, metric, decisive, classes, value,
                                 [r for _, _, rs, _ in candidates for r in rs], confidence)
        metrics[name], intervals[name] = value, worst[name].interval
    return metrics, intervals, rows, worst, tuple(per_class)


def _disparity(feature: str, metric: str, decisive, classes, value: float, rates, confidence: float) -> Disparity:
    target, _, by_group = decisive
    pair = compared_pair(by_group, metric)
    return Disparity(feature, metric, None if target is None else classes[target], value,
                     _interval(metric, value, rates, confidence), pair, group_rates(by_group, pair.rate))


def _rates(by_group: pd.DataFrame, metric: str) -> list[tuple[np.ndarray, np.ndarray]]:
    return [rate_counts(by_group, rate) for rate in COMPARES[metric][0]]


def _interval(metric: str, value: float, rates, confidence: float) -> tuple[float, float]:
    if not np.isfinite(value):
        return float("nan"), float("nan")
    worst = worst_gap_interval if COMPARES[metric][1] == "difference" else worst_ratio_interval
    return worst(rates, confidence)


def _row(disparity: Disparity, cls, groups: int) -> dict:
    d, (low, high) = disparity, disparity.interval
    return {"feature": d.feature, "class": cls, "metric": d.metric, "value": d.value, "low": low, "high": high,
            "worse_group": d.pair.worse, "better_group": d.pair.better, "groups_compared": groups,
            "direction": d.direction}
