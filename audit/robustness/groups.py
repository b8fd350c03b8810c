"""Robustness by sensitive group: robust accuracy and median flip epsilon per group.

Continuous sensitive attributes are bucketed first: a column named `age` into the
bins <25, 25-44, 45-64 and 65+; any other numeric column with more than 10 distinct
values into its quartiles. Groups with fewer than `min_size` sampled examples are
reported but left out of the largest gap.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

AGE_EDGES = (-np.inf, 25, 45, 65, np.inf)
AGE_LABELS = ("<25", "25-44", "45-64", "65+")


def group_values(column: pd.Series) -> pd.Series:
    """The group of each row: the value itself (as text), or its bucket for a continuous
    attribute (an ordered categorical, so the buckets are listed in order)."""
    numeric = pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)
    if not numeric or column.nunique() <= 10:
        return column.astype(str)
    if str(column.name).lower() == "age":
        return pd.cut(column, AGE_EDGES, labels=AGE_LABELS, right=False)
    buckets = pd.qcut(column, 4, duplicates="drop")
    return buckets.cat.rename_categories([str(c) for c in buckets.cat.categories])


def group_table(sensitive: pd.DataFrame, robust_correct: np.ndarray, flip: np.ndarray | None) -> pd.DataFrame:
    """One row per (attribute, group): examples, robust accuracy and, when `flip` is given
    (NaN for examples misclassified before the attack, inf where the attack never flipped),
    the share of the group's correct examples flipped and their median flip measure."""
    rows = []
    for attribute in sensitive.columns:
        values = group_values(sensitive[attribute])
        ordered = values.cat.categories if isinstance(values.dtype, pd.CategoricalDtype) else sorted(values.unique())
        for group in ordered:
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
