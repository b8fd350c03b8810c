"""The per-row outcomes a slice is scored on: whether the prediction was wrong, the label's and the prediction's
side of the positive class, and the confidence of the prediction."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Outcomes:
    """Per-row arrays of one length. `positive` (the label is the positive class) and `predicted` (the positive
    class was predicted) are None for a multiclass task; `confidence` is the probability of the predicted class."""

    error: np.ndarray
    positive: np.ndarray | None
    predicted: np.ndarray | None
    confidence: np.ndarray

    @property
    def binary(self) -> bool:
        return self.positive is not None

    def __len__(self) -> int:
        return len(self.error)

    @classmethod
    def of(cls, labels, proba, positive: int | None) -> Outcomes:
        """From integer labels, (n, k) class probabilities and the positive class (None for multiclass); the
        prediction is the most probable class."""
        labels = np.asarray(labels)
        proba = np.asarray(proba, dtype=float)
        predicted_class = proba.argmax(axis=1)
        confidence = proba[np.arange(len(proba)), predicted_class]
        if positive is None:
            return cls(predicted_class != labels, None, None, confidence)
        return cls(predicted_class != labels, labels == positive, predicted_class == positive, confidence)
