"""Robustness by sensitive group: robust accuracy and median flip epsilon per group.

Groups are those of the fairness analyzer (`audit.core.groups.group_labels`:
continuous attributes bucketed the same way, so both tables of a report agree).
Groups with fewer than `min_size` sampled examples are reported but left out of the
largest gap.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from audit.core.groups import group_labels

def group_table(sensitive: pd.DataFrame, robust_correct: np.ndarray, flip: np.ndarray | None) -> pd.DataFrame:
    """One row per (attribute, group): examples, robust accuracy and, when `flip` is given
    (NaN for examples misclassified before the attack, inf where the attack never flipped),
    the share of the group's correct examples flipped and their median flip measure."""
    rows = []
    labels = group_labels(sensitive)
    for attribute in labels.columns:
        values = labels[attribute]
        for group in values.cat.categories:
            members = np.asarray(values == group, dtype=bool)
            if not members.any():
                continue
            row = {"attribute": attribute, "group": group, "examples": int(members.sum()),
                   "robust_accuracy": float(robust_correct[members].mean())}
            if flip is not None:
                flips = flip[members & ~np.isnan(flip)]
                row["flipped_share"] = float(np.isfinite(flips).mean()) if len(flips) else float("nan")
                row["median_flip"] = float(np.median(flips)) if len(flips) else float("nan")
            rows.append(row)
    return pd.DataFrame(rows)


def largest_gap(table: pd.DataFrame, *, min_size: int) -> tuple[float, str | None]:
    """The largest difference in robust accuracy between two groups of one attribute, and that attribute;
    (nan, None) when no attribute has two groups of at least `min_size` examples."""
    best, where = 0.0, None
    for attribute, rows in table[table["examples"] >= min_size].groupby("attribute", sort=False):
        if len(rows) < 2:
            continue
        gap = float(rows["robust_accuracy"].max() - rows["robust_accuracy"].min())
        if where is None or gap > best:
            best, where = gap, attribute
    return (best, where) if where is not None else (float("nan"), None)
