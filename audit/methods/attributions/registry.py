"""One registry of attribution methods, shared by `audit.explain` and the analyzers.

A method is a function `(model, data, target, *, seed, **options) -> np.ndarray` that
attributes the `target` class of each example of `data` to the model's inputs:
shape (N, F) over model-space features for tables, (N, C, H, W) for images, and
(N, L) per token position for text (zero at padding).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from audit._util.errors import AuditInputError

AttributionFn = Callable[..., np.ndarray]


@dataclass(frozen=True)
class AttributionMethod:
    name: str
    fn: AttributionFn
    modalities: tuple[str, ...]
    description: str
    passes: int | None = 1  # forward and back per explained example (its plan's cost); None: one forward per
    # feature or window of the input (occlusion)


_METHODS: dict[str, AttributionMethod] = {}


def register_method(name: str, *, modalities: tuple[str, ...] = ("tabular", "image", "text"), description: str,
                    passes: int | None = 1):
    def decorator(fn: AttributionFn) -> AttributionFn:
        if name in _METHODS:
            raise ValueError(f"attribution method {name!r} is registered twice")
        _METHODS[name] = AttributionMethod(name, fn, modalities, description, passes)
        return fn

    return decorator


def get_method(name: str) -> AttributionMethod:
    if name not in _METHODS:
        raise AuditInputError(f"unknown attribution method {name!r}; available: {', '.join(_METHODS)}")
    return _METHODS[name]


def list_methods(modality: str | None = None) -> list[str]:
    return [m.name for m in _METHODS.values() if modality is None or modality in m.modalities]
