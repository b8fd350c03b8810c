"""The statistics of slice discovery (audit.methods.slices): lattice counts, tests, false discovery control, power.

A fixed-seed slice of benchmarks/slice_discovery.py: planted slices found on adult, none on null adult data, a
small false discovery simulation, the detectable gap's power, and sliceline's top slice among ours."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import binom, norm

from audit._util.errors import AuditInputError
from audit.methods.slices import Outcomes, SliceLattice, detectable_gap, discover
from audit.methods.slices.gaps import proportion_gap, proportion_p_value
from audit.methods.slices.lattice import RESOLUTION_BITS
from audit.methods.slices.power import by_threshold, harmonic


def benchmark():
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "slice_discovery.py"
    spec = importlib.util.spec_from_file_location("slice_benchmark", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def adult():
    bench = benchmark()
    codes, cardinalities, _ = bench.adult_codes()
    return bench, codes, cardinalities


def synthetic(seed: int, rows: int = 4000, cardinalities=(3, 3, 2, 4, 3), planted=((0, 0), (1, 0)),
              gap: float = 0.25, base: float = 0.15, classes: int = 2, missing: float = 0.0):
    """Independent uniform codes; labels, errors and confidence independent of them except that the `planted`
    rows (None: none) err `gap` more often. Returns (codes, outcomes)."""
    rng = np.random.default_rng(seed)
    codes = np.column_stack([rng.integers(0, c, rows) for c in cardinalities])
    if missing:
        codes[rng.random(codes.shape) < missing] = -1
    error_rate = np.full(rows, base)
    if planted is not None:
        error_rate[np.all([codes[:, f] == c for f, c in planted], axis=0)] += gap
    labels = rng.integers(0, classes, rows)
    wrong = rng.random(rows) < error_rate
    predicted = np.where(wrong, (labels + rng.integers(1, classes, rows)) % classes, labels)
    confidence = rng.uniform(1 / classes + 0.05, 1.0, rows)
    proba = np.full((rows, classes), 0.0)
    proba += ((1 - confidence) / (classes - 1))[:, None]
    proba[np.arange(rows), predicted] = confidence
    return codes, Outcomes.of(labels, proba, positive=1 if classes == 2 else None)


def lattice_of(codes, outcomes, cardinalities, depth=2, chunks=(None,)):
    lattice = SliceLattice(cardinalities, depth=depth)
    for part in np.array_split(np.arange(len(codes)), len(chunks)) if chunks != (None,) else [slice(None)]:
        lattice.add(codes[part], Outcomes(*(None if a is None else a[part] for a in (
            outcomes.error, outcomes.positive, outcomes.predicted, outcomes.confidence))))
    return lattice


# ---- lattice ----

def test_outcomes_of_binary_and_multiclass():
    proba = np.array([[0.9, 0.1], [0.3, 0.7], [0.4, 0.6]])
    out = Outcomes.of(np.array([0, 0, 1]), proba, positive=1)
    assert out.error.tolist() == [False, True, False]
    assert out.positive.tolist() == [False, False, True] and out.predicted.tolist() == [False, True, True]
    assert out.confidence.tolist() == [0.9, 0.7, 0.6]
    multi = Outcomes.of(np.array([2, 0]), np.array([[0.2, 0.3, 0.5], [0.1, 0.8, 0.1]]), positive=None)
    assert multi.error.tolist() == [False, True] and multi.positive is None and not multi.binary


@pytest.mark.parametrize("features", [(1,), (0, 2), (2, 4), (0, 1, 3)])
def test_lattice_counts_equal_a_pandas_groupby(features):
    cardinalities = (3, 4, 2, 5, 3)
    codes, out = synthetic(1, rows=3000, cardinalities=cardinalities, missing=0.05)
    lattice = lattice_of(codes, out, cardinalities, depth=3)
    frame = pd.DataFrame(codes[:, list(features)], columns=[f"f{f}" for f in features])
    frame = frame.assign(kind=2 * out.positive + out.predicted,
                         residual=np.rint((out.confidence - ~out.error) * 2 ** RESOLUTION_BITS))
    frame = frame[(frame[[f"f{f}" for f in features]] >= 0).all(axis=1)]
    table = lattice.table(features)
    for key, group in frame.groupby([f"f{f}" for f in features]):
        cell = table[tuple(np.atleast_1d(key))]
        assert cell[:4].tolist() == [int((group["kind"] == k).sum()) for k in range(4)]
        assert cell[4] == group["residual"].sum()
    assert table[..., :4].sum() == len(frame)  # rows missing any of the features are in no slice
    assert lattice.rows == len(codes)


def test_counts_are_the_same_whatever_the_chunking():
    cardinalities = (3, 3, 2, 4, 3)
    for classes in (2, 4):
        codes, out = synthetic(2, rows=5000, classes=classes, missing=0.02)
        whole = lattice_of(codes, out, cardinalities)
        chunked = lattice_of(codes, out, cardinalities, chunks=(None,) * 7)
        order = np.random.default_rng(0).permutation(len(codes))
        first, second = order[:1234], order[1234:]
        merged = lattice_of(codes[first], Outcomes(*(None if a is None else a[first] for a in (
            out.error, out.positive, out.predicted, out.confidence))), cardinalities)
        merged.merge(lattice_of(codes[second], Outcomes(*(None if a is None else a[second] for a in (
            out.error, out.positive, out.predicted, out.confidence))), cardinalities))
        for other in (chunked, merged):
            assert np.array_equal(other.total, whole.total)
            for features in whole.feature_sets:
                assert np.array_equal(other.table(features), whole.table(features))
        pd.testing.assert_frame_equal(discover(merged, min_rows=50).table, discover(whole, min_rows=50).table)


def test_bad_input_is_one_clear_error():
    lattice = SliceLattice((2, 3))
    _, out = synthetic(0, rows=4)
    with pytest.raises(AuditInputError, match="rows, 2"):
        lattice.add(np.zeros((4, 3), dtype=int), out)
    with pytest.raises(AuditInputError, match="outside"):
        lattice.add(np.array([[0, 3]] * 4), out)
    with pytest.raises(AuditInputError, match="same features"):
        lattice.merge(SliceLattice((2, 4)))
    with pytest.raises(AuditInputError, match="at least one row"):
        discover(lattice)
    lattice.add(np.zeros((4, 2), dtype=int), out)
    with pytest.raises(AuditInputError, match="unknown slice metric"):
        discover(lattice, metrics=("accuracy",))
    _, multi = synthetic(0, rows=4, classes=3)
    with pytest.raises(AuditInputError, match="mix"):
        lattice.add(np.zeros((4, 2), dtype=int), multi)


def test_data_smaller_than_the_size_rule_tests_nothing_and_says_so():
    codes, out = synthetic(0, rows=150)
    found = discover(lattice_of(codes, out, (3, 3, 2, 4, 3)), min_rows=100)
    assert (found.tests, found.slices, found.discoveries, len(found.shown)) == (0, 0, 0, 0)
    assert np.isnan(found.detectable_gap)  # nothing was tested


# ---- tests and intervals ----

def test_exact_limits_hold_the_level_where_score_limits_do_not():
    """At a level near the search's (7e-7), a null slice of 128 rows at a 2% base rate: the rejection probability,
    summed exactly over the binomial, stays under the level (score limits gave 5.8e-5, 80 times it)."""
    level, rows, base = 7e-7, 128, 0.02
    rest = 48_000
    errors = np.arange(rows + 1)
    p_values = proportion_p_value(errors, rows, round(base * rest), rest)
    assert binom.pmf(errors, rows, base)[p_values <= level].sum() <= level
    assert binom.pmf(errors, rows, 0.2)[p_values <= level].sum() > 0.5  # and it still detects a large gap


def test_p_value_inverts_the_interval():
    rng = np.random.default_rng(3)
    n1, n2 = rng.integers(50, 3000, 500), rng.integers(2000, 40000, 500)
    x1, x2 = rng.binomial(n1, rng.uniform(0.01, 0.5, 500)), rng.binomial(n2, rng.uniform(0.01, 0.5, 500))
    p = proportion_p_value(x1, n1, x2, n2)
    for level in (1e-2, 1e-5, 1e-8):
        _, lower, upper = proportion_gap(x1, n1, x2, n2, norm.isf(level / 2))
        assert np.array_equal(p <= level, (lower > 0) | (upper < 0))


def test_discoveries_are_benjamini_yekutieli_and_agree_with_the_intervals():
    codes, out = synthetic(4, rows=6000, gap=0.12)
    found = discover(lattice_of(codes, out, (3, 3, 2, 4, 3)), min_rows=50)
    table = found.table
    m = found.tests
    assert m == len(table)
    order = np.argsort(table["p_value"].to_numpy())
    adjusted = np.minimum.accumulate((table["p_value"].to_numpy()[order] * m * harmonic(m)
                                      / np.arange(1, m + 1))[::-1])[::-1]  # the BY adjusted p-values
    expected = np.zeros(m, dtype=bool)
    expected[order] = adjusted <= found.alpha
    assert table["discovered"].tolist() == expected.tolist() and expected.any()
    assert found.threshold == pytest.approx(by_threshold(m, found.alpha, int(expected.sum())))
    assert ((table["lower"] > 0) | (table["upper"] < 0)).tolist() == expected.tolist()
    assert (table["lower"] <= table["gap"]).all() and (table["gap"] <= table["upper"]).all()
    assert set(table["metric"]) == {"error_rate", "false_positive_rate", "false_negative_rate", "selection_rate",
                                    "calibration_gap"}


def test_multiclass_tests_the_error_rate_and_calibration_only():
    codes, out = synthetic(5, rows=6000, classes=4)
    found = discover(lattice_of(codes, out, (3, 3, 2, 4, 3)), min_rows=50)
    assert set(found.table["metric"]) == {"error_rate", "calibration_gap"}
    shown = found.shown
    assert ((0, 0), (1, 0)) in set(shown.loc[shown["metric"] == "error_rate", "slice"])


# ---- discovery: planted and null ----

def test_a_planted_adult_slice_is_shown_and_null_adult_data_shows_none(adult):
    bench, codes, cardinalities = adult
    choices = bench.planted_choices(codes, cardinalities)
    planted = choices[7]
    found = bench.search(codes, cardinalities, *bench.simulate(len(codes), 7, bench.members(codes, planted)), chunks=3)
    error_slices = set(found.shown.loc[found.shown["metric"] == "error_rate", "slice"])
    assert planted in error_slices
    assert found.tests > 5000 and found.slices > 1000
    for seed in (1, 2):
        null = bench.search(codes, cardinalities, *bench.simulate(len(codes), 1_000_000 + seed))
        assert null.discoveries == 0 and len(null.shown) == 0
        assert null.tests == pytest.approx(found.tests, rel=0.01)


def test_a_child_is_shown_only_when_worse_than_each_parent():
    """A whole feature value errs more (every child of it alike): the parent is shown, its children are not; a
    planted child inside an unremarkable parent is shown."""
    rng = np.random.default_rng(6)
    rows, cardinalities = 8000, (3, 4, 3)
    codes = np.column_stack([rng.integers(0, c, rows) for c in cardinalities])
    error = rng.random(rows) < 0.1 + 0.2 * (codes[:, 0] == 2) + 0.3 * ((codes[:, 1] == 1) & (codes[:, 2] == 0))
    labels = rng.integers(0, 2, rows)
    proba = np.column_stack([np.full(rows, 0.8), np.full(rows, 0.2)])
    proba[labels ^ error == 1] = [0.2, 0.8]
    found = discover(lattice_of(codes, Outcomes.of(labels, proba, 1), cardinalities), metrics=("error_rate",))
    discovered = dict(zip(found.table["slice"], found.table["discovered"]))
    shown = dict(zip(found.table["slice"], found.table["shown"]))
    assert shown[((0, 2),)]
    children = [((0, 2), (1, c)) for c in (0, 2, 3)] + [((0, 2), (2, c)) for c in (1, 2)]  # none overlaps the plant
    assert sum(discovered[c] for c in children) >= 3 and not any(shown[c] for c in children)
    assert shown[((1, 1), (2, 0))]


def test_false_discovery_rate_by_simulation():
    """Planted on features 0 and 1; every slice of features 2 to 4 alone is null. The share of discoveries on
    null slices stays under alpha; without the plant, no discovery at all in nearly every data set."""
    false_shares, planted_found, any_null = [], 0, 0
    for seed in range(20):
        codes, out = synthetic(100 + seed, gap=0.2)
        table = discover(lattice_of(codes, out, (3, 3, 2, 4, 3)), min_rows=50).table
        hits = table[table["discovered"]]
        null = hits["slice"].map(lambda s: all(f >= 2 for f, _ in s))
        false_shares.append(null.mean() if len(hits) else 0.0)
        planted_found += ((0, 0), (1, 0)) in set(hits["slice"])
        codes, out = synthetic(200 + seed, planted=None)
        any_null += bool(discover(lattice_of(codes, out, (3, 3, 2, 4, 3)), min_rows=50).discoveries)
    assert np.mean(false_shares) <= 0.05
    assert planted_found >= 18
    assert any_null <= 1


def test_detectable_gap_is_detected_about_80_percent_of_the_time():
    rows, total, base, tests, alpha = 300, 20_000, 0.15, 2000, 0.05
    gap = detectable_gap(rows, total, base, tests=tests, alpha=alpha)
    assert 0.05 < gap < 0.3
    rng = np.random.default_rng(7)
    draws = 600

    def power(g):
        slice_errors = rng.binomial(rows, base + g, draws)
        rest_errors = rng.binomial(total - rows, base, draws)
        return np.mean(proportion_p_value(slice_errors, rows, rest_errors, total - rows)
                       <= by_threshold(tests, alpha))

    assert 0.74 <= power(gap) <= 0.86
    assert power(gap / 2) < 0.1
    bigger = detectable_gap(np.array([100, 300, 3000]), total, base, tests=tests, alpha=alpha)
    assert bigger[0] > bigger[1] == pytest.approx(gap) and bigger[1] > bigger[2]
    assert np.isnan(detectable_gap(10, total, 0.9, tests=tests, alpha=alpha))  # no rise of 0.1 can be seen


@pytest.mark.filterwarnings("ignore:is_sparse is deprecated")  # inside sliceline 0.3.0, on pandas 3
def test_sliceline_top_slice_is_among_ours():
    from sliceline.slicefinder import Slicefinder

    cardinalities = (3, 3, 2, 4, 3)
    codes, out = synthetic(8, rows=6000, planted=((2, 1), (3, 2)), gap=0.3)
    found = discover(lattice_of(codes, out, cardinalities), min_rows=50)
    finder = Slicefinder(alpha=0.99, k=1, max_l=2, min_sup=50, verbose=False)
    finder.fit(pd.DataFrame(codes), out.error.astype(float))
    top = tuple((f, int(c)) for f, c in enumerate(finder.top_slices_[0]) if c is not None)
    assert top == ((2, 1), (3, 2))
    assert top in set(found.shown["slice"])
