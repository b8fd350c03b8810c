"""A what-if preview of threshold post-processing (fairlearn's ThresholdOptimizer) on the model's scores.

A preview only: the model is not changed. For each sensitive feature, ThresholdOptimizer
learns group-specific thresholds on the positive-class score of a seeded half of the
audited rows (groups below the minimum size left out) and is evaluated on the other half,
next to the model's own predictions on that half.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from fairlearn.postprocessing import ThresholdOptimizer

from audit.methods.fairness.metrics import confusion_by_group, disparities_from_cells
from audit.methods.fairness.thresholds import CONSTRAINTS, Scores

MITIGATION_TABLE = "mitigation_preview_(model_unchanged)"  # the report captions a table by its name


def threshold_preview(score: np.ndarray, y_true: np.ndarray, y_pred: np.ndarray, groups: pd.DataFrame,
                      kept: Mapping[str, Sequence], *, seed: int) -> pd.DataFrame:
    """Accuracy and disparities on the evaluation half, before and after post-processing, per feature."""
    half = np.random.default_rng(seed).permutation(len(score)) < len(score) // 2
    proba = np.column_stack([1 - score, score])  # what `Scores` reads: the positive score is column 1
    rows = []
    for feature in groups.columns:
        if len(kept[feature]) < 2:
            continue
        member = groups[feature].isin(kept[feature]).to_numpy()
        fit, evaluate = half & member, ~half & member
        if len(np.unique(y_true[fit])) < 2 or fit.sum() < 2 * len(kept[feature]) or not evaluate.any():
            continue  # too few rows in the fitting half to post-process anything
        s_eval = groups[feature][evaluate].reset_index(drop=True)
        y_eval = y_true[evaluate]
        rows.append(_row(feature, "none (the model as it is)", y_eval, y_pred[evaluate], s_eval))
        for constraint in CONSTRAINTS:
            optimizer = ThresholdOptimizer(estimator=Scores(), constraints=constraint,
                                           prefit=True, predict_method="predict_proba")
            try:
                optimizer.fit(proba[fit], y_true[fit], sensitive_features=groups[feature][fit].to_numpy())
                after = optimizer.predict(proba[evaluate], sensitive_features=s_eval.to_numpy(), random_state=seed)
            except ValueError as exc:  # e.g. a group with a single label in the fitting half
                rows.append({"feature": feature, "post_processing": constraint, "note": str(exc).splitlines()[0]})
                continue
            rows.append(_row(feature, constraint, y_eval, np.asarray(after, dtype=int), s_eval))
    return pd.DataFrame(rows)


def _row(feature, label, y_true, y_pred, groups) -> dict:
    cells = confusion_by_group(y_true, y_pred, groups).to_numpy(dtype=np.float64)
    gaps = {name: float(values[0]) for name, values in disparities_from_cells(cells[None]).items()}
    return {"feature": feature, "post_processing": label, "rows": len(y_true),
            "accuracy": float(np.mean(y_true == y_pred)),
            "selection_rate": float(np.mean(y_pred)),
            "demographic_parity_difference": gaps["demographic_parity_difference"],
            "equalized_odds_difference": gaps["equalized_odds_difference"],
            "equal_opportunity_difference": gaps["equal_opportunity_difference"]}
