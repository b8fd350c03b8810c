"""The disparities' score intervals: the published values of the methods, the worst case never tighter
than its parts, no collapse, and coverage by simulation (a fixed slice of benchmarks/interval_coverage.py)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from audit.analyzers.fairness.analyzer import Fairness
from audit.analyzers.fairness.disparities import WORST
from audit.methods.fairness.intervals import gap_bounds, ratio_bounds, wilson, worst_gap_interval, worst_ratio_interval
from audit.methods.fairness.metrics import COMPARES, DISPARITIES
from tests.test_fairness_metrics import scorer_model, table

Z95 = 1.959964


@pytest.mark.parametrize("x, n, plain, corrected", [  # Newcombe (1998), Stat Med 17:857, table I
    (81, 263, (0.2553, 0.3662), (0.2535, 0.3682)),
    (15, 148, (0.0624, 0.1605), (0.0598, 0.1644)),
    (0, 20, (0.0, 0.1611), (0.0, 0.2005)),
    (1, 29, (0.0061, 0.1718), (0.0018, 0.1963)),
])
def test_wilson_intervals_equal_newcombes_published_values(x, n, plain, corrected):
    assert wilson(x, n, Z95, continuity=False)[1:] == pytest.approx(plain, abs=1e-4)
    assert wilson(x, n, Z95)[1:] == pytest.approx(corrected, abs=1e-4)


@pytest.mark.parametrize("counts, method10, method11", [  # Newcombe (1998), Stat Med 17:873, table II
    ((56, 70, 48, 80), (0.0524, 0.3339), (0.0428, 0.3422)),
    ((9, 10, 3, 10), (0.1705, 0.8090), (0.1013, 0.8387)),
])
def test_difference_intervals_equal_newcombes_published_values(counts, method10, method11):
    x1, n1, x2, n2 = counts
    rate = (np.array([x1, x2]), np.array([n1, n2]))
    assert np.ravel(gap_bounds(rate, Z95, continuity=False)) == pytest.approx(method10, abs=1e-4)
    assert np.ravel(gap_bounds(rate, Z95)) == pytest.approx(method11, abs=1e-4)


def test_ratio_interval_is_mover_on_the_log_scale_from_the_wilson_limits():
    low, high = ratio_bounds((np.array([10, 20]), np.array([50, 50])), Z95)  # 0.2 / 0.4
    (p1, l1, u1), (p2, l2, u2) = (wilson(10, 50, Z95), wilson(20, 50, Z95))
    d = np.log(p1 / p2)
    expected = (np.exp(d - np.hypot(np.log(p1 / l1), np.log(u2 / p2))),
                np.exp(d + np.hypot(np.log(u1 / p1), np.log(p2 / l2))))
    assert (low[0], high[0]) == pytest.approx(expected, abs=1e-12)
    assert low[0] < 0.5 < high[0] < 1
    flipped = ratio_bounds((np.array([20, 10]), np.array([50, 50])), Z95)  # min(p1/p2, p2/p1): the same
    assert np.ravel(flipped) == pytest.approx([low[0], high[0]], abs=1e-12)


@pytest.mark.parametrize("x, n", [
    ([30, 30], [30, 30]),  # everyone selected in both groups
    ([0, 0], [40, 40]),  # nobody selected
    ([0, 5], [40, 40]),
    ([3, 0], [3, 0]),  # a group with no trials (no positives): uninformative, not a zero
])
def test_degenerate_counts_never_collapse_and_hold_the_estimate(x, n):
    rate = (np.array(x, dtype=float), np.array(n, dtype=float))
    p = wilson(*rate, Z95)[0]
    gap_low, gap_high = worst_gap_interval([rate], 0.95)
    assert gap_low <= abs(p[0] - p[1]) <= gap_high and gap_high > gap_low
    ratio_low, ratio_high = worst_ratio_interval([rate], 0.95)
    assert ratio_high > ratio_low
    if max(p) > 0:
        assert ratio_low <= min(p) / max(p) <= ratio_high


def test_the_worst_case_is_never_tighter_than_a_part_it_is_the_worst_of():
    data = table(n=900, classes=3)
    model = scorer_model(data, weights=((-1.0, 0.0), (0.0, 0.3), (1.0, 0.0)))
    result = Fairness(intersections=1, bins={"age": (40,)}, mitigation=False).run(model, data)
    rows = result.tables["disparities"]
    checked = 0
    for metric in DISPARITIES:
        gap = COMPARES[metric][1] == "difference"
        overall = result.intervals[f"fairness.{metric}"]
        for feature in ("sex", "race", "age"):
            worst = result.intervals[f"fairness.{feature}.{metric}"]
            assert (overall[1] >= worst[1]) if gap else (overall[0] <= worst[0]), (metric, feature)
            per_class = rows[(rows["feature"] == feature) & (rows["metric"] == metric) & (rows["class"] != WORST)]
            if metric == "accuracy_difference":  # the multiclass accuracy gap, not a worst over classes
                assert list(per_class["class"]) == ["all classes"]
                continue
            assert len(per_class) == 3
            for _, row in per_class.iterrows():
                assert (worst[1] >= row["high"]) if gap else (worst[0] <= row["low"]), (metric, feature, row)
                checked += 1
        assert overall[0] <= result.metrics[f"fairness.{metric}"] <= overall[1]
    assert checked == 5 * 3 * 3


def coverage_module():
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "interval_coverage.py"
    spec = importlib.util.spec_from_file_location("coverage_benchmark", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("metric, sizes, base, gap", [  # settings where the former bootstrap covered 0.43-0.76
    ("demographic_parity_difference", (30, 30), 0.3, 0.1),
    ("demographic_parity_difference", (100, 100), 0.3, 0.05),
    ("demographic_parity_difference", (30, 1000), 0.05, 0.05),
    ("equalized_odds_difference", (1000, 1000), 0.05, 0.1),
    ("equal_opportunity_difference", (30, 1000), 0.3, 0.0),
    ("accuracy_difference", (10_000, 10_000), 0.5, 0.2),
])
def test_coverage_and_gate_false_passes_hold_by_simulation(metric, sizes, base, gap):
    study = coverage_module().study(metric, sizes, base, gap, samples=1000, bootstrap=0, seed=0)["ours"]
    assert study["coverage"] >= 0.94 and study["false_pass"] <= 0.025, study


def test_the_former_bootstrap_fails_the_same_simulation():  # the slice above can fail
    study = coverage_module().study("demographic_parity_difference", (30, 1000), 0.05, 0.05, samples=200,
                                    bootstrap=200, seed=0)["bootstrap"]
    assert study["coverage"] < 0.9
