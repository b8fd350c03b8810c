"""Where continuous inputs may move: which features, in what units, within which bounds.

Images move in every pixel, in the encoder's units, inside the encoder's [low, high]
(widened to the audited images' own range, so a clean image is never clipped). Tables move only
in their continuous columns (one-hot and other 0/1 columns never), in standard-deviation
units (the encoder's space is already standardized; a passthrough encoder is scaled by
the audited data's per-column std), inside the per-column min/max of the training data
and the audited data together (the audited data alone for a passthrough encoder, whose
training data is unknown).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from audit.core.dataset import Dataset
from audit.core.model import Model


@dataclass(frozen=True)
class Domain:
    """Per-feature bounds, step scale and movable mask, each broadcastable to one input."""

    low: torch.Tensor
    high: torch.Tensor
    scale: torch.Tensor
    mask: torch.Tensor

    def to(self, device) -> Domain:
        return Domain(*(t.to(device) for t in (self.low, self.high, self.scale, self.mask)))

    def clip(self, x: torch.Tensor) -> torch.Tensor:
        return torch.clamp(x, min=self.low, max=self.high)

    def without_bounds(self) -> Domain:
        """The same units and mask with no bounds on the values."""
        return Domain(torch.full_like(self.low, -torch.inf), torch.full_like(self.high, torch.inf), self.scale,
                      self.mask)

    @property
    def movable(self) -> int:
        return int(self.mask.bool().sum())


def input_domain(model: Model, data: Dataset, x: torch.Tensor) -> Domain:
    """The domain of `data`'s model-space inputs `x` (images or tables)."""
    if model.modality == "image":
        one = torch.ones(x.shape[1:])
        low, high = min(model.encoder.low, float(x.min())), max(model.encoder.high, float(x.max()))
        return Domain(one * low, one * high, one, one)
    mask = torch.from_numpy(model.encoder.continuous_mask(data).astype(np.float32))
    low, high = x.min(dim=0).values, x.max(dim=0).values
    if model.encoder.passthrough:
        scale = x.std(dim=0, correction=0).clamp(min=1e-6)
    else:
        scale = torch.ones(x.shape[1])
    trained = model.encoder.training_bounds()
    if trained is not None:
        low = torch.minimum(low, torch.from_numpy(trained[0]).to(low.dtype))
        high = torch.maximum(high, torch.from_numpy(trained[1]).to(high.dtype))
    return Domain(low, high, scale, mask)
