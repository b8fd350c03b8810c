"""Per-group metrics and disparities of one binary outcome, computed by fairlearn's MetricFrame.

The outcome is "is the positive class": `y_true` and `y_pred` are 0/1 arrays, `y_score`
the model's probability of the positive class.
"""

from __future__ import annotations

from functools import partial

import numpy as np
import pandas as pd
from fairlearn.metrics import (MetricFrame, false_negative_rate, false_positive_rate, selection_rate,
                               true_positive_rate)
from sklearn.metrics import accuracy_score, precision_score

CALIBRATION_BINS = 10

#: Disparities between groups: name -> (what it measures, the value that means parity).
DISPARITIES = {
    "demographic_parity_difference": ("largest gap in selection rate between groups", 0.0),
    "demographic_parity_ratio": ("smallest ratio of selection rates between groups", 1.0),
    "equalized_odds_difference": ("larger of the largest gaps in true and false positive rates", 0.0),
    "equalized_odds_ratio": ("smaller of the smallest ratios of true and false positive rates", 1.0),
    "equal_opportunity_difference": ("largest gap in true positive rate between groups", 0.0),
    "accuracy_difference": ("largest gap in accuracy between groups", 0.0),
}

#: The group rates each disparity compares, and whether it is a gap ("difference") or a "ratio"
#: between two groups' rates; RATE_COUNTS says which confusion cells make a rate's successes and trials.
COMPARES = {
    "demographic_parity_difference": (("selection_rate",), "difference"),
    "demographic_parity_ratio": (("selection_rate",), "ratio"),
    "equalized_odds_difference": (("tpr", "fpr"), "difference"),
    "equalized_odds_ratio": (("tpr", "fpr"), "ratio"),
    "equal_opportunity_difference": (("tpr",), "difference"),
    "accuracy_difference": (("accuracy",), "difference"),
}
RATE_COUNTS = {
    "selection_rate": (("fp", "tp"), ("tn", "fp", "fn", "tp")),
    "accuracy": (("tn", "tp"), ("tn", "fp", "fn", "tp")),
    "tpr": (("tp",), ("fn", "tp")),
    "fpr": (("fp",), ("tn", "fp")),
}

#: Which end of each rate is worse off, taking the positive class as the favourable outcome (AIF360's convention).
WORSE_END = {"selection_rate": "low", "accuracy": "low", "tpr": "low", "fpr": "high"}
RATE_NAMES = {"selection_rate": "selection rate", "accuracy": "accuracy", "tpr": "true positive rate",
              "fpr": "false positive rate"}

#: AIF360's signed metrics of a group against a reference ("privileged") group, the positive class favourable.
SIGNED = ("statistical_parity_difference", "disparate_impact", "average_odds_difference",
          "equal_opportunity_difference")


def signed_against(by_group: pd.DataFrame, reference) -> pd.DataFrame:
    """Each other row of a `group_table` against the `reference` row, in AIF360's conventions (its
    ClassificationMetric with the reference as privileged group): selection rate minus (SIGNED[0]) and over
    (SIGNED[1]) the reference's, the mean of the false and true positive rate differences (SIGNED[2]), the true
    positive rate difference (SIGNED[3]). Negative differences and ratios below 1: the group is selected less."""
    ref = by_group.loc[reference]
    others = by_group.drop(index=reference)
    with np.errstate(invalid="ignore", divide="ignore"):
        table = pd.DataFrame({
            "group": others.index.astype(str), "reference_group": str(reference),
            SIGNED[0]: (others["selection_rate"] - ref["selection_rate"]).to_numpy(),
            SIGNED[1]: (others["selection_rate"] / ref["selection_rate"]).to_numpy(),
            SIGNED[2]: (0.5 * ((others["fpr"] - ref["fpr"]) + (others["tpr"] - ref["tpr"]))).to_numpy(),
            SIGNED[3]: (others["tpr"] - ref["tpr"]).to_numpy(),
        })
    return table


def rate_counts(by_group: pd.DataFrame, rate: str) -> tuple[np.ndarray, np.ndarray]:
    """(successes, trials) of `rate` per row of a `group_table`."""
    successes, trials = RATE_COUNTS[rate]
    return (by_group[list(successes)].sum(axis=1).to_numpy(dtype=float),
            by_group[list(trials)].sum(axis=1).to_numpy(dtype=float))


def count(y_true, y_pred, *, sample_weight) -> float:
    return float(np.sum(sample_weight))


def base_rate(y_true, y_pred, *, sample_weight) -> float:
    return float(np.average(y_true, weights=sample_weight))


def calibration_bin(y_score: np.ndarray) -> np.ndarray:
    return np.clip((np.asarray(y_score, dtype=float) * CALIBRATION_BINS).astype(int), 0, CALIBRATION_BINS - 1)


def calibration_error(y_true, y_pred, *, y_score, score_bin, sample_weight) -> float:
    """Expected calibration error of the positive-class probability over CALIBRATION_BINS equal-width
    bins: the count-weighted mean gap between predicted probability and observed positive rate."""
    gap = np.bincount(score_bin, weights=sample_weight * (np.asarray(y_true) - y_score), minlength=CALIBRATION_BINS)
    return float(np.abs(gap).sum() / np.sum(sample_weight))


GROUP_METRICS = {
    "count": count,
    "base_rate": base_rate,
    "selection_rate": selection_rate,
    "accuracy": accuracy_score,
    "tpr": true_positive_rate,
    "fpr": false_positive_rate,
    "fnr": false_negative_rate,
    "precision": partial(precision_score, zero_division=0),
    "calibration_error": calibration_error,
}


def group_table(y_true, y_pred, y_score, groups: pd.Series) -> pd.DataFrame:
    """One row per group of `groups` (categorical): GROUP_METRICS by fairlearn's MetricFrame, and the confusion
    counts (`table_from_cells` of `outcome_cells`)."""
    codes = groups.cat.codes.to_numpy()
    weight, score = outcome_cells(codes, len(groups.cat.categories), y_true, y_pred, y_score)
    return table_from_cells(weight, score, groups.cat.categories, groups.name)


def outcome_cells(codes: np.ndarray, groups: int, y_true, y_pred, y_score) -> tuple[np.ndarray, np.ndarray]:
    """The rows counted by group code, true and predicted outcome and calibration bin, and their scores summed:
    two arrays of shape (groups, 2, 2, CALIBRATION_BINS). They add up over chunks of rows, and every metric of
    `table_from_cells` is a function of them."""
    y_score = np.asarray(y_score, dtype=float)
    cell = ((np.asarray(codes, dtype=np.int64) * 2 + np.asarray(y_true, dtype=int)) * 2
            + np.asarray(y_pred, dtype=int)) * CALIBRATION_BINS + calibration_bin(y_score)
    shape = (groups, 2, 2, CALIBRATION_BINS)
    size = int(np.prod(shape))
    return (np.bincount(cell, minlength=size).reshape(shape).astype(np.int64),
            np.bincount(cell, weights=y_score, minlength=size).reshape(shape).astype(float))


def table_from_cells(weight: np.ndarray, score: np.ndarray, categories, name) -> pd.DataFrame:
    """One row per group with rows (in `categories`' order): GROUP_METRICS by fairlearn's MetricFrame, and the
    confusion counts tn, fp, fn, tp.

    Each filled cell of `outcome_cells` becomes one row, weighted by its number of rows and scored
    by their mean score. Every metric here is a weighted count, so MetricFrame gives the same
    numbers as on the rows one by one, while reading hundreds of rows rather than all of them
    (fairlearn stacks every row in Python, several seconds per table on tens of thousands of rows).
    """
    categories = np.asarray(categories, dtype=object)
    g, t, p, b = np.nonzero(weight)
    w = weight[g, t, p, b].astype(float)
    params = {metric: {"sample_weight": w} for metric in GROUP_METRICS}
    params["calibration_error"].update(y_score=score[g, t, p, b] / w, score_bin=b)
    frame = MetricFrame(metrics=GROUP_METRICS, y_true=t, y_pred=p,
                        sensitive_features=pd.Series(categories[g], name=name), sample_params=params)
    table = frame.by_group.copy()
    table["count"] = table["count"].astype(int)
    confusion = pd.DataFrame(weight.sum(axis=3).reshape(len(categories), 4), columns=["tn", "fp", "fn", "tp"],
                             index=pd.Index(categories, name=name)).astype(int)
    present = [c for c in categories if c in set(table.index)]
    return table.loc[present].join(confusion)


def confusion_by_group(y_true, y_pred, groups: pd.Series) -> pd.DataFrame:
    cell = 2 * np.asarray(y_true, dtype=int) + np.asarray(y_pred, dtype=int)
    counts = pd.crosstab(groups.to_numpy(), cell).reindex(columns=range(4), fill_value=0)
    counts.columns = ["tn", "fp", "fn", "tp"]
    counts.index.name = groups.name
    return counts.astype(int)


def disparities(by_group: pd.DataFrame) -> dict[str, float]:
    """DISPARITIES between the rows of a `group_table`, as fairlearn's MetricFrame.difference() (largest
    minus smallest) and .ratio() (smallest over largest) define them; each equals the fairlearn function of
    the same name (demographic_parity_difference, equalized_odds_ratio, ...) on those groups' rows."""
    high, low = by_group.max(), by_group.min()
    with np.errstate(invalid="ignore", divide="ignore"):
        difference, ratio = high - low, low / high
    return {
        "demographic_parity_difference": float(difference["selection_rate"]),
        "demographic_parity_ratio": float(ratio["selection_rate"]),
        # fairlearn takes Python's max/min over (tpr, fpr), in that order; same here for NaN handling
        "equalized_odds_difference": float(max(difference[["tpr", "fpr"]])),
        "equalized_odds_ratio": float(min(ratio[["tpr", "fpr"]])),
        "equal_opportunity_difference": float(difference["tpr"]),
        "accuracy_difference": float(difference["accuracy"]),
    }


def disparities_from_cells(c: np.ndarray) -> dict[str, np.ndarray]:
    """DISPARITIES per row of (rows, groups, 4) tn/fp/fn/tp cell counts, with fairlearn's conventions:
    a group with no rows is left out; a rate with an empty denominator is 0 (as
    sklearn's normalized confusion matrix gives); a ratio of 0 to 0 is NaN."""
    tn, fp, fn, tp = np.moveaxis(c, -1, 0)
    n = tn + fp + fn + tp
    present = n > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        rates = {
            "selection_rate": (fp + tp) / n,
            "accuracy": (tp + tn) / n,
            "tpr": np.where(tp + fn > 0, tp / (tp + fn), 0.0),
            "fpr": np.where(fp + tn > 0, fp / (fp + tn), 0.0),
        }
        high = {k: np.max(np.where(present, v, -np.inf), axis=1) for k, v in rates.items()}
        low = {k: np.min(np.where(present, v, np.inf), axis=1) for k, v in rates.items()}
        diff = {k: high[k] - low[k] for k in rates}
        ratio = {k: low[k] / high[k] for k in rates}
    none = ~present.any(axis=1)
    out = {
        "demographic_parity_difference": diff["selection_rate"],
        "demographic_parity_ratio": ratio["selection_rate"],
        "equalized_odds_difference": np.where(diff["fpr"] > diff["tpr"], diff["fpr"], diff["tpr"]),
        "equalized_odds_ratio": np.where(ratio["fpr"] < ratio["tpr"], ratio["fpr"], ratio["tpr"]),
        "equal_opportunity_difference": diff["tpr"],
        "accuracy_difference": diff["accuracy"],
    }
    return {k: np.where(none, np.nan, v) for k, v in out.items()}
