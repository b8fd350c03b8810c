"""Natural corruptions at three severities, seeded: what a model meets without an adversary.

Images (in units of the encoder's range, clipped to it): Gaussian noise, Gaussian blur,
brightness shift and contrast reduction, after Hendrycks & Dietterich (2019). Tables:
Gaussian noise on the continuous features, in standard-deviation units, clipped to the
data range. Text: a character typo in a share of the words.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import torch
from scipy.ndimage import gaussian_filter

from audit.methods.robustness.domain import Domain
from audit.methods.robustness.typos import typo_text

SEVERITIES = (1, 2, 3)
IMAGE_LEVELS = {
    "gaussian_noise": (0.04, 0.08, 0.16),  # noise std, as a share of the range
    "blur": (0.5, 1.0, 1.5),  # Gaussian sigma in pixels
    "brightness": (0.1, 0.2, 0.3),  # shift, as a share of the range
    "contrast": (0.75, 0.5, 0.3),  # factor on the distance from each image's mean
}
TABLE_LEVELS = {"feature_noise": (0.1, 0.25, 0.5)}  # noise std in standard deviations
TEXT_LEVELS = {"typos": (0.1, 0.2, 0.4)}  # share of words with a typo


def corrupted_images(x: torch.Tensor, domain: Domain, *, seed: int) -> Iterator[tuple[str, int, float, torch.Tensor]]:
    """(corruption, severity, level, corrupted images) for every corruption and severity."""
    span = domain.high - domain.low
    generator = torch.Generator().manual_seed(seed)
    make: dict[str, Callable[[float], torch.Tensor]] = {
        "gaussian_noise": lambda s: x + torch.randn(x.shape, generator=generator) * s * span,
        "blur": lambda s: torch.from_numpy(gaussian_filter(x.numpy(), sigma=(0, 0, s, s), mode="nearest")),
        "brightness": lambda s: x + s * span,
        "contrast": lambda s: (x - x.mean(dim=(1, 2, 3), keepdim=True)) * s + x.mean(dim=(1, 2, 3), keepdim=True),
    }
    for name, levels in IMAGE_LEVELS.items():
        for severity, level in zip(SEVERITIES, levels):
            yield name, severity, level, domain.clip(make[name](level))


def corrupted_tables(x: torch.Tensor, domain: Domain, *, seed: int) -> Iterator[tuple[str, int, float, torch.Tensor]]:
    generator = torch.Generator().manual_seed(seed)
    for severity, level in zip(SEVERITIES, TABLE_LEVELS["feature_noise"]):
        noise = torch.randn(x.shape, generator=generator) * level * domain.scale * domain.mask
        yield "feature_noise", severity, level, domain.clip(x + noise)


def corrupted_texts(texts: list[str], *, seed: int) -> Iterator[tuple[str, int, float, list[str]]]:
    rng = np.random.default_rng(seed)
    for severity, level in zip(SEVERITIES, TEXT_LEVELS["typos"]):
        yield "typos", severity, level, [typo_text(t, level, rng) for t in texts]
