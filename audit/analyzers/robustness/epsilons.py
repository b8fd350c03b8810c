"""The default attack budgets: the configured epsilon and the large one of the sanity check."""

from __future__ import annotations

import math

from audit.methods.robustness.domain import Domain

IMAGE_EPSILON = 0.1  # L-inf, as a share of the encoder's range
TABLE_EPSILON = 0.2  # L-inf, in standard deviations
TABLE_LARGE_EPSILON = 10.0  # standard deviations, with the data-range bounds lifted


def default_epsilon(modality: str, norm: str, domain: Domain) -> float:
    linf = IMAGE_EPSILON * float((domain.high - domain.low).mean()) if modality == "image" else TABLE_EPSILON
    return linf if norm == "linf" else linf * math.sqrt(domain.movable) / 4


def default_large_epsilon(modality: str, norm: str, domain: Domain) -> float:
    """Large enough to reach any valid image, or 10 standard deviations of a table column."""
    linf = float((domain.high - domain.low).max()) if modality == "image" else TABLE_LARGE_EPSILON
    return linf if norm == "linf" else linf * math.sqrt(domain.movable)
