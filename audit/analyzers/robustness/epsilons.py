"""The attack budgets: the configured epsilon (by default from the input domain), the sweep's grid around it, and
the large one of the sanity check."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import torch

from audit.methods.robustness.domain import Domain, input_domain

if TYPE_CHECKING:
    from audit.analyzers.robustness.analyzer import Robustness

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


def attack_grid(options: Robustness, model, data, encoded: torch.Tensor) -> tuple[Domain, float, np.ndarray, int]:
    """Where the attacks on `data` (`encoded`: its model inputs) move (its input domain), the configured epsilon
    there, the sweep's epsilons (ascending, the configured one among them) and the configured one's index in them."""
    domain = input_domain(model, data, encoded)
    eps = options.epsilon or default_epsilon(model.modality, options.norm, domain)
    grid = np.unique(np.concatenate([np.asarray(options.sweep) * eps, [eps]]))
    return domain, eps, grid, int(np.searchsorted(grid, eps))
