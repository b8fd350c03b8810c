"""The adversarial table rows shown in the report, in the data's own units."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch


def table_examples(model, sample, x, adv, shown, adv_pred) -> pd.DataFrame:
    """The (at most) five most perturbed features of each example, in the data's own units."""
    names = model.feature_names(sample)
    raw_x, raw_adv = _data_units(model, x), _data_units(model, adv)
    decimals = _decimals(model, x.shape[1])
    labels = model.labels(sample)
    rows = []
    for j, i in enumerate(shown):
        change = (adv[j] - x[j]).numpy()
        order = [f for f in np.argsort(-np.abs(change), kind="stable")[:5] if change[f] != 0]
        for f in order:
            rows.append({"example": int(i), "feature": names[f],
                         "original": round(float(raw_x[j, f]), decimals[f]) + 0.0,
                         "adversarial": round(float(raw_adv[j, f]), decimals[f]) + 0.0,
                         "change_model_units": float(change[f]),
                         "prediction": model.classes[int(labels[i])],
                         "adversarial_prediction": model.classes[int(adv_pred[j])]})
    return pd.DataFrame(rows)


def _data_units(model, x: torch.Tensor) -> np.ndarray:
    """Model-space table rows with the standardized columns mapped back to the data's units."""
    values = x.numpy().astype(np.float64).copy()
    encoder = model.encoder
    if not encoder.passthrough and encoder.numeric:
        k = len(encoder.numeric)
        values[:, :k] = values[:, :k] * np.asarray(encoder.stds) + np.asarray(encoder.means)
    return values


def _decimals(model, width: int) -> list[int]:
    """Decimals that show a column in its data units to 1/1000 of its standard deviation: the float
    error of mapping back (a 0 read as -1.3e-05) rounds away; an attack moves 0.2 of one."""
    scales = np.ones(width)
    encoder = model.encoder
    if not encoder.passthrough and encoder.numeric:
        scales[:len(encoder.numeric)] = np.asarray(encoder.stds, dtype=np.float64)
    return [3 - math.floor(math.log10(scale)) for scale in scales]
