"""Wrappers that mask or obfuscate a network's gradient while keeping (nearly) its decisions,
for ground-truth tests of the attack sanity checks (Athalye et al., 2018; Carlini et al., 2019).
Import with `from masked import ...` (pytest puts tests/ on the path)."""

from __future__ import annotations

import torch
from torch import nn


class ConstantGradient(nn.Module):
    """The network's logits exactly, plus a path that is zero in the forward pass but adds a large
    constant, misleading gradient (a fixed random direction per class) in the backward pass."""

    def __init__(self, inner: nn.Module, features: int, classes: int, scale: float = 100.0):
        super().__init__()
        self.inner = inner
        generator = torch.Generator().manual_seed(0)
        self.register_buffer("direction", torch.randn(features, classes, generator=generator) * scale)

    def forward(self, x):
        path = x.flatten(1) @ self.direction
        return self.inner(x) + (path - path.detach())


class Rounded(nn.Module):
    """Inputs rounded to `levels` + 1 values before the network: a gradient of zero almost everywhere."""

    def __init__(self, inner: nn.Module, levels: int = 4):
        super().__init__()
        self.inner, self.levels = inner, levels

    def forward(self, x):
        return self.inner(torch.round(x * self.levels) / self.levels)


class Saturated(nn.Module):
    """The network's logits times `scale`: the same decisions, a softmax saturated to 0 and 1, so the
    cross-entropy's gradient is zero in float32 wherever the model is confident."""

    def __init__(self, inner: nn.Module, scale: float = 1e4):
        super().__init__()
        self.inner, self.scale = inner, scale

    def forward(self, x):
        return self.inner(x) * self.scale


class Noisy(nn.Module):
    """Gaussian noise of standard deviation `sigma` added to the input at every forward pass."""

    def __init__(self, inner: nn.Module, sigma: float = 0.1):
        super().__init__()
        self.inner, self.sigma = inner, sigma

    def forward(self, x):
        return self.inner(x + self.sigma * torch.randn_like(x))
