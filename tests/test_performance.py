"""The performance analyzer against scikit-learn, and calibration on known cases."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score, precision_score, recall_score

import audit
from audit.analyzers.performance.analyzer import Performance, expected_calibration_error


def test_metrics_equal_scikit_learn(digits_cnn):
    data = audit.load_dataset("digits", "test")
    result = Performance().run(digits_cnn, data)
    pred = digits_cnn.predict(data)
    y = data.labels
    assert result.metrics["performance.accuracy"] == pytest.approx(accuracy_score(y, pred), abs=1e-12)
    assert result.metrics["performance.balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y, pred))
    assert result.metrics["performance.macro_f1"] == pytest.approx(f1_score(y, pred, average="macro"))
    per_class = result.tables["per_class"]
    np.testing.assert_allclose(per_class["precision"], precision_score(y, pred, average=None, zero_division=0))
    np.testing.assert_allclose(per_class["recall"], recall_score(y, pred, average=None))
    confusion = result.tables["confusion_matrix"].to_numpy()
    assert confusion.sum() == len(data) and np.trace(confusion) == (pred == y).sum()
    assert len(result.figures) == 2 and all(f.png.startswith(b"\x89PNG") for f in result.figures)


def test_ece_is_zero_when_confidence_matches_accuracy():
    # 10 predictions at confidence 0.8, of which 8 are right: perfectly calibrated.
    proba = np.tile([0.8, 0.2], (10, 1))
    labels = np.array([0] * 8 + [1] * 2)
    ece, table = expected_calibration_error(proba, labels, bins=10)
    assert ece == pytest.approx(0.0)
    assert table["count"].sum() == 10


def test_ece_measures_overconfidence():
    proba = np.tile([0.95, 0.05], (100, 1))
    labels = np.array([0] * 60 + [1] * 40)
    ece, _ = expected_calibration_error(proba, labels, bins=10)
    assert ece == pytest.approx(0.35)
