"""Attributions computed once and read by every analyzer that asks for the same ones: saliency computes them,
explanation quality checks them. Kept per model (weakly: they go with it) for the same method, options, examples,
targets and seed, and the same weights (the parameters' version counters: training in place computes them anew);
the `KEPT` latest per model."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from weakref import WeakKeyDictionary

import numpy as np

from audit.core.dataset import Dataset
from audit.core.model import Model

KEPT = 8

_kept: WeakKeyDictionary[Model, OrderedDict[tuple, np.ndarray]] = WeakKeyDictionary()


def shared(model: Model, data: Dataset, method: str, fn: Callable, target, seed: int,
           compute: Callable[[], np.ndarray], options: tuple = ()) -> np.ndarray:
    """`compute()`'s attributions, or a copy of those kept for the same call (`fn` is the method's function,
    `options` the (name, value) pairs it is called with)."""
    weights = tuple(p._version for p in model.module.parameters())
    key = (method, id(fn), options, data.sha256, np.asarray(target, dtype=np.int64).tobytes(), seed, weights)
    kept = _kept.setdefault(model, OrderedDict())
    if key not in kept:
        kept[key] = compute()
        while len(kept) > KEPT:
            kept.popitem(last=False)
    kept.move_to_end(key)
    return kept[key].copy()
