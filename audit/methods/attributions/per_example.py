"""Each explained example's most attributed inputs, for the per-example table (`Result.examples`).

The units are the ones the global rankings use (`audit.methods.attributions.summary`): raw columns for tables
(a one-hot group summed into its column), pixels "row,column" for images (summed over channels), and the words
of a text in order (a word that occurs twice is listed twice).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from audit.core.dataset import Dataset
from audit.methods.attributions.summary import feature_groups, group_sums

TOP = 5


def top_attributions(model, data: Dataset, values: np.ndarray, prefix: str, *, top: int = TOP) -> pd.DataFrame:
    """Columns `<prefix>.top_features` (names, most attributed first by |value|) and `<prefix>.top_values` (their
    signed attributions) for the examples of `data` explained by `values` (examples, ...), one row each."""
    if model.modality == "text":
        tokens = [model.encoder.tokens(text) for text in data.texts]
        units = [(words, row[: len(words)]) for words, row in zip(tokens, values)]
    elif model.modality == "image":
        summed = values.sum(axis=1).reshape(len(values), -1)  # over channels
        width = values.shape[-1]
        names = np.array([f"{i // width},{i % width}" for i in range(summed.shape[1])], dtype=object)
        units = [(names, row) for row in summed]
    else:
        names, groups = feature_groups(model, data)
        names = np.array(names, dtype=object)
        units = [(names, row) for row in group_sums(values.reshape(len(values), -1), groups)]
    features, weights = [], []
    for unit_names, row in units:
        order = np.argsort(-np.abs(row), kind="stable")[:top]
        features.append([str(unit_names[i]) for i in order])
        weights.append([float(row[i]) for i in order])
    return pd.DataFrame({f"{prefix}.top_features": features, f"{prefix}.top_values": weights})
