"""Counting the example-passes a model really makes, for checking the plan's (audit.executor.plan).

Analyzers pass the model's module, deep copies of it (the randomization cascade, SHAP's hookable copy) and
wrappers around it to captum, shap and lime; every one of them runs the first layer that has weights. A
global forward hook counts the rows each such call carries: as `backward` when a gradient flows back
through it (a tensor hook on the output counts the rows it receives), else as `forward`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

from torch import nn


@dataclass
class Passes:
    forward: int = 0
    backward: int = 0


def first_layer(module: nn.Module) -> nn.Module:
    """The first leaf module that owns weights: every pass of the model runs it once."""
    return next(m for m in module.modules() if not any(True for _ in m.children())
                and any(True for _ in m.parameters(recurse=False)))


@contextlib.contextmanager
def counting(module: nn.Module) -> Iterator[Passes]:
    """Passes of `module` and of its copies while inside: a copy's first layer has the same type and weight
    shapes (the models tested give no other layer that signature)."""
    first = first_layer(module)
    signature = (type(first), tuple(p.shape for p in first.parameters(recurse=False)))
    passes = Passes()

    def backward(grad):
        passes.backward += grad.shape[0]

    def hook(layer, _args, out):
        if (type(layer), tuple(p.shape for p in layer.parameters(recurse=False))) != signature:
            return
        out = out[0] if isinstance(out, tuple) else out
        if out.requires_grad:
            out.register_hook(backward)
        else:
            passes.forward += out.shape[0]

    handle = nn.modules.module.register_module_forward_hook(hook)
    try:
        yield passes
    finally:
        handle.remove()
