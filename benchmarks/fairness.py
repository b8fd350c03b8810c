"""Bootstrap of fairness disparities: our vectorized counting against fairlearn called in a loop;
and the per-group table: MetricFrame on merged weighted rows against MetricFrame on every row.

Times 1,000 resamples of the six disparities for three sensitive features on 50,000 rows,
and the same resamples computed by fairlearn's functions (demographic_parity_difference,
..., MetricFrame for the accuracy gap) on the resampled rows. The fairlearn loop is timed
on the first FAIRLEARN_RESAMPLES resamples and extrapolated to 1,000 (it is linear in
the number of resamples); on those resamples the values are checked to be equal.

The group table (audit.fairness.metrics.group_table) hands MetricFrame one weighted row
per (group, true, predicted, calibration bin) instead of every row; the second part times
both on the same 50,000 rows and checks the tables are equal.

    python benchmarks/fairness.py
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
from fairlearn.metrics import (MetricFrame, demographic_parity_difference, demographic_parity_ratio,
                               equal_opportunity_difference, equalized_odds_difference, equalized_odds_ratio)
from sklearn.metrics import accuracy_score

from audit.fairness.bootstrap import Outcome, Strata, bootstrap_disparities, resample_counts, resample_rows
from audit.fairness.metrics import GROUP_METRICS, calibration_bin, group_table

ROWS = 50_000
RESAMPLES = 1_000
FAIRLEARN_RESAMPLES = 10
SEED = 0

FAIRLEARN = {
    "demographic_parity_difference": demographic_parity_difference,
    "demographic_parity_ratio": demographic_parity_ratio,
    "equalized_odds_difference": equalized_odds_difference,
    "equalized_odds_ratio": equalized_odds_ratio,
    "equal_opportunity_difference": equal_opportunity_difference,
    "accuracy_difference": lambda y, p, sensitive_features: MetricFrame(
        metrics=accuracy_score, y_true=y, y_pred=p, sensitive_features=sensitive_features).difference(),
}


def synthetic(n: int, seed: int):
    rng = np.random.default_rng(seed)
    groups = pd.DataFrame({
        "sex": rng.choice(["Female", "Male"], n, p=[0.33, 0.67]),
        "race": rng.choice(["White", "Black", "Asian", "Other"], n, p=[0.8, 0.1, 0.06, 0.04]),
        "age": rng.choice(["<25", "25-34", "35-44", "45-54", "55-64", ">=65"], n),
    })
    y_true = (rng.random(n) < 0.2 + 0.1 * (groups["sex"] == "Male").to_numpy()).astype(int)
    y_pred = np.where(rng.random(n) < 0.8, y_true, 1 - y_true)
    return groups, y_true, y_pred


def ours(groups: pd.DataFrame, y_true, y_pred):
    codes = {f: pd.factorize(groups[f], sort=True) for f in groups.columns}
    strata = Strata.from_codes([*(c for c, _ in codes.values()), y_true, y_pred])
    outcomes = {f: Outcome(c, len(u), y_true, y_pred) for f, (c, u) in codes.items()}
    return strata, bootstrap_disparities(strata, outcomes, RESAMPLES, SEED)


def main() -> None:
    groups, y_true, y_pred = synthetic(ROWS, SEED)
    ours(groups.iloc[:1000], y_true[:1000], y_pred[:1000])  # warm-up
    start = time.perf_counter()
    strata, replicates = ours(groups, y_true, y_pred)
    ours_seconds = time.perf_counter() - start

    counts = np.concatenate(list(resample_counts(strata, FAIRLEARN_RESAMPLES, SEED)))
    rows = [resample_rows(strata, c, seed=b) for b, c in enumerate(counts)]
    worst = 0.0
    start = time.perf_counter()
    for b, r in enumerate(rows):
        for feature in groups.columns:
            sensitive = groups[feature].to_numpy()[r]
            for metric, function in FAIRLEARN.items():
                value = function(y_true[r], y_pred[r], sensitive_features=sensitive)
                worst = max(worst, abs(value - replicates[feature][metric][b]))
    fairlearn_seconds = (time.perf_counter() - start) * RESAMPLES / FAIRLEARN_RESAMPLES

    print(f"rows {ROWS:,}, resamples {RESAMPLES:,}, features {len(groups.columns)}, disparities {len(FAIRLEARN)}, "
          f"strata {len(strata)}")
    print(f"ours (vectorized counting):   {ours_seconds:8.3f} s")
    print(f"fairlearn in a loop:          {fairlearn_seconds:8.1f} s  (timed on {FAIRLEARN_RESAMPLES} resamples, "
          f"x{RESAMPLES // FAIRLEARN_RESAMPLES} extrapolated)")
    print(f"speed-up:                     {fairlearn_seconds / ours_seconds:8.0f}x")
    print(f"largest difference on the {FAIRLEARN_RESAMPLES} shared resamples: {worst:.2e}")

    group_tables(groups["race"], y_true, y_pred)


def group_tables(groups: pd.Series, y_true, y_pred) -> None:
    score = np.clip(y_pred * 0.6 + np.random.default_rng(SEED).random(len(y_pred)) * 0.4, 0, 1)
    start = time.perf_counter()
    merged = group_table(y_true, y_pred, score, groups)
    merged_seconds = time.perf_counter() - start
    ones = np.ones(len(y_true))
    params = {name: {"sample_weight": ones} for name in GROUP_METRICS}
    params["calibration_error"].update(y_score=score, score_bin=calibration_bin(score))
    start = time.perf_counter()
    every_row = MetricFrame(metrics=GROUP_METRICS, y_true=y_true, y_pred=y_pred, sensitive_features=groups,
                            sample_params=params).by_group
    row_seconds = time.perf_counter() - start
    worst = float((merged[every_row.columns] - every_row).abs().max().max())
    print(f"group table, MetricFrame on every row:     {row_seconds:8.3f} s")
    print(f"group table, MetricFrame on merged rows:   {merged_seconds:8.3f} s  "
          f"({row_seconds / merged_seconds:.0f}x; largest difference {worst:.2e})")


if __name__ == "__main__":
    main()
