"""Group-specific thresholds (Hardt et al. 2016) fitted by fairlearn's ThresholdOptimizer, returned as the plain
`GroupThresholds` a checkpoint carries (audit.core.postprocessing)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from fairlearn.postprocessing import ThresholdOptimizer
from sklearn.base import BaseEstimator, ClassifierMixin

from audit._util.errors import AuditInputError
from audit.core.postprocessing import CONSTRAINTS, HIGH, LOW, GroupThresholds


def fit_thresholds(proba: np.ndarray, labels: np.ndarray, groups: pd.Series, *, column: str, constraint: str,
                   positive: int, seed: int,
                   tol: float | None = None) -> tuple[GroupThresholds, ThresholdOptimizer]:
    """ThresholdOptimizer fitted on a binary model's probabilities, and its rule as `GroupThresholds`. With
    `tol` (demographic parity only, as fairlearn allows) the constraint is relaxed: the groups' selection
    rates on the fitting data lie within `tol` of each other; 0 is strict, 1 no constraint."""
    if constraint not in CONSTRAINTS:
        raise AuditInputError(f"--constraint must be one of {', '.join(CONSTRAINTS)}, found {constraint!r}")
    if proba.shape[1] != 2:
        raise AuditInputError(f"group thresholds need a model with two classes, this one has {proba.shape[1]}")
    if tol is not None and (constraint != "demographic_parity" or not 0 <= tol <= 1):
        raise AuditInputError(f"a relaxed threshold constraint (tol) must lie in [0, 1] and goes with "
                              f"demographic_parity only (fairlearn does not relax {constraint}), found tol {tol!r}")
    optimizer = ThresholdOptimizer(estimator=Scores(positive), constraints=constraint, prefit=True,
                                   predict_method="predict_proba", tol=tol)
    try:
        optimizer.fit(proba, (labels == positive).astype(int), sensitive_features=groups.astype(str).to_numpy())
    except ValueError as exc:  # e.g. a group with a single label
        raise AuditInputError(f"thresholds by {column}: {exc}") from None
    rules = {str(group): _rule(bunch)
             for group, bunch in optimizer.interpolated_thresholder_.interpolation_dict.items()}
    return GroupThresholds(column, constraint, positive, seed, rules, tol), optimizer


class Scores(ClassifierMixin, BaseEstimator):
    """A fitted 'estimator' over a model's probabilities: its input is the (N, 2) probability array."""

    def __init__(self, positive: int = 1):
        self.positive = positive

    def fit(self, x, y):
        return self

    def predict_proba(self, x):
        score = np.asarray(x, dtype=np.float64)[:, self.positive]
        return np.column_stack([1 - score, score])

    def __sklearn_is_fitted__(self) -> bool:
        return True


def _rule(bunch) -> dict:
    return {"p0": float(bunch.p0), "operator0": bunch.operation0.operator,
            "threshold0": _finite(bunch.operation0.threshold),
            "p1": float(bunch.p1), "operator1": bunch.operation1.operator,
            "threshold1": _finite(bunch.operation1.threshold),
            "p_ignore": float(bunch.get("p_ignore", 0.0)), "constant": float(bunch.get("prediction_constant", 0.0))}


def _finite(threshold: float) -> float:
    return float(min(max(threshold, LOW), HIGH))
