"""The candidate columns of the slice search: which they are, their codes and their words."""

from __future__ import annotations

import numpy as np
import pandas as pd

from audit.analyzers.slices.analyzer import Slices
from audit.analyzers.slices.columns import Coder, raw_columns
from audit.core.dataset import Dataset
from audit.core.groups import SensitiveValues
from audit.executor.predictions import Predictions


def coder_of(frame: pd.DataFrame, sensitive: pd.DataFrame | None = None, max_values: int = 12,
             max_columns: int = 32) -> Coder:
    sensitive = pd.DataFrame(index=frame.index) if sensitive is None else sensitive
    data = Dataset(frame, np.zeros(len(frame), dtype=np.int64), ("a", "b"), "tabular", sensitive=sensitive)
    return Coder.of(raw_columns(data), SensitiveValues.of(sensitive), max_values=max_values,
                    max_columns=max_columns)


def test_values_read_as_words():
    frame = pd.DataFrame({"age": np.arange(18, 98), "workclass": ["Self-emp-not-inc", "Private"] * 40,
                          "years": np.arange(80) % 20, "ratio": np.linspace(0, 1, 80)})
    coder = coder_of(frame)
    words = {c.name: [c.words(k) for k in range(len(c.values))] for c in coder.columns}
    assert words["age"][0] == "age < 25" and words["age"][1] == "age 25-34" and words["age"][-1] == "age >= 65"
    assert words["workclass"] == ["workclass = Private", "workclass = Self-emp-not-inc"]
    assert words["ratio"][0] == "ratio < 0.25" and words["ratio"][-1] == "ratio >= 0.75"
    assert coder.words(((0, 0), (1, 1))) == "age < 25 and workclass = Self-emp-not-inc"


def test_missing_values_rare_values_and_constant_columns_are_in_no_slice():
    frame = pd.DataFrame({"color": ["red"] * 50 + ["blue"] * 30 + ["pink"] * 2 + [None] * 3,
                          "weight": [np.nan] + list(np.arange(84.0)), "constant": ["x"] * 85})
    coder = coder_of(frame, max_values=2)
    assert [c.name for c in coder.columns] == ["color", "weight"] and coder.dropped == ("constant",)
    assert coder.columns[0].values == ("blue", "red")
    codes = coder.codes(raw_columns(Dataset(frame, np.zeros(85, dtype=np.int64), ("a", "b"), "tabular")))
    assert list(codes[:, 0]) == [1] * 50 + [0] * 30 + [-1] * 5
    assert codes[0, 1] == -1 and (codes[1:, 1] >= 0).all()


def test_sensitive_columns_come_first_and_keep_the_census_groups_even_when_an_input_shares_their_name():
    frame = pd.DataFrame({"sex": ["F", "M"] * 50, "hours": np.arange(100) % 7})
    sensitive = pd.DataFrame({"sex": ["F", "M"] * 50, "site": ["a"] * 60 + ["b"] * 40})
    coder = coder_of(frame, sensitive)
    assert [c.name for c in coder.columns] == ["sex", "site", "hours"]
    assert coder.columns[2].values == tuple(str(v) for v in range(7))


def test_data_too_small_to_test_any_slice_says_so():
    frame = pd.DataFrame({"color": ["red", "blue"] * 30})
    data = Dataset(frame, np.zeros(60, dtype=np.int64), ("a", "b"), "tabular")
    analyzer = Slices()
    result = analyzer.run(Predictions(np.tile([0.4, 0.6], (60, 1)), data.classes), data)
    assert result.metrics["slices.slices_tested"] == 0 and "slices.detectable_gap" not in result.metrics
    (finding,) = analyzer.findings(result, {"slice_gap_max": 0.1})
    assert finding.severity == "info" and finding.sentence.startswith("No slice could be tested")
    assert "at least 100 of the 60 rows" in finding.sentence


def test_a_multiclass_slice_is_found_and_the_better_calibrated_rest_is_not_shown():
    rng = np.random.default_rng(0)
    data = Dataset(pd.DataFrame({"c": rng.choice(["x", "y", "z"], 3000)}), rng.integers(0, 3, 3000),
                   ("a", "b", "c"), "tabular")
    wrong = (data.inputs["c"] == "x").to_numpy() & (rng.random(3000) < 0.5)
    proba = np.eye(3)[np.where(wrong, (data.labels + 1) % 3, data.labels)]  # confident, so x is miscalibrated
    result = Slices().run(Predictions(proba, data.classes), data)
    assert [(s.words, s.metric) for s in result.summary.found] == [("c = x", "error rate")]
    table = result.tables["slices"]
    assert set(table.loc[table["shown"], "slice"]) == {"c = x"}
    assert {"c = y", "c = z"} <= set(table.loc[~table["shown"] & (table["metric"] == "calibration gap"), "slice"])


def test_data_without_a_column_to_cut_tests_nothing():
    data = Dataset(pd.DataFrame({"c": ["x"] * 300}), np.zeros(300, dtype=np.int64), ("a", "b"), "tabular")
    result = Slices().run(Predictions(np.tile([0.4, 0.6], (300, 1)), data.classes), data)
    assert result.metrics["slices.slices_tested"] == 0 and result.details["constant_columns"] == ["c"]


def test_columns_beyond_max_columns_are_left_out_with_a_warning():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({f"c{i}": rng.choice(["a", "b"], 400) for i in range(5)})
    sensitive = pd.DataFrame({"site": rng.choice(["x", "y"], 400)})
    assert [c.name for c in coder_of(frame, sensitive, max_columns=3).columns] == ["site", "c0", "c1"]
    data = Dataset(frame, rng.integers(0, 2, 400), ("a", "b"), "tabular", sensitive=sensitive)
    result = Slices(max_columns=3).run(Predictions(np.tile([0.4, 0.6], (400, 1)), data.classes), data)
    assert list(result.details["columns"]) == ["site", "c0", "c1"]
    assert result.warnings == ("3 column(s) not searched, beyond slices.max_columns = 3: c2, c3, c4",)


def test_options_out_of_range_are_refused_in_one_line():
    import pytest

    from audit._util.errors import AuditInputError

    for options in ({"depth": 4}, {"depth": 0}, {"min_rows": 0}, {"alpha": 1.0}, {"max_values": 1},
                    {"max_columns": 0}, {"top": 0}):
        with pytest.raises(AuditInputError, match="^slices: "):
            Slices(**options)
