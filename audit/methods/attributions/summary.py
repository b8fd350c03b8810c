"""Attributions summed back to the units a reader knows: raw columns (a one-hot group counts
for its column), pixels, and words over their occurrences."""

from __future__ import annotations

import numpy as np
import pandas as pd

from audit.core.dataset import Dataset


def feature_groups(model, data: Dataset) -> tuple[list[str], list[np.ndarray]]:
    """Raw column names and, for each, its model-space feature indices (a one-hot group for a
    category); one feature per name for images and for tables fed as they are."""
    names = model.feature_names(data)
    encoder = model.encoder
    if model.modality != "tabular" or encoder.passthrough:
        return names, [np.array([i]) for i in range(len(names))]
    groups = [np.array([i]) for i in range(len(encoder.numeric))]
    start = len(encoder.numeric)
    for cats in encoder.categorical.values():
        groups.append(np.arange(start, start + len(cats)))
        start += len(cats)
    return list(encoder.columns), groups


def group_sums(values: np.ndarray, groups: list[np.ndarray]) -> np.ndarray:
    """`values` (..., features) summed over each group of features: (..., groups)."""
    return np.stack([values[..., g].sum(axis=-1) for g in groups], axis=-1)


def token_values(model, data: Dataset, values: np.ndarray) -> pd.DataFrame:
    """One row per token of each text: the word (`feature`) and its value (`value`)."""
    words, per_token = [], []
    for text, row in zip(data.texts, values):
        tokens = model.encoder.tokens(text)
        words += tokens
        per_token.append(row[: len(tokens)])
    return pd.DataFrame({"feature": words, "value": np.concatenate(per_token)})


def importance_table(values: np.ndarray, model, data: Dataset, *, value: str) -> pd.DataFrame:
    """Global importance, most important first: the mean over examples of |attribution|,
    summed per raw column for one-hot groups (tables), per model-space feature (images),
    and per word over its occurrences (text); `mean` keeps the sign."""
    if model.modality == "text":
        table = token_values(model, data, values).groupby("feature")["value"].agg(
            **{value: lambda v: np.abs(v).mean(), "mean": "mean", "count": "size"})
    else:
        names, groups = feature_groups(model, data)
        grouped = group_sums(values.reshape(len(values), -1), groups)
        table = pd.DataFrame({value: np.abs(grouped).mean(axis=0), "mean": grouped.mean(axis=0)},
                             index=pd.Index(names, name="feature"))
    return table.sort_values(value, ascending=False, kind="stable")
