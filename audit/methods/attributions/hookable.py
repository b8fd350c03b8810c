"""A copy of a module that hook-based explainers (DeepLIFT, shap's DeepExplainer) can read.

They replace the gradient of each nonlinear module by a rescale rule computed from the
module's input and output, saved by hooks (shap hooks every leaf module). Three common
coding habits break that: an in-place activation overwrites the input the rule needs; a
residual `out += x` modifies a hooked module's output in place ("Output 0 of
BackwardHookFunction is a view and is being modified inplace"); and one activation (or
pooling) instance called at several places in `forward` (torchvision's ResNet blocks call
`self.relu` twice) keeps only the last call's tensors (captum issues #199, #578, #1104).
The copy switches in-place activations off, returns a fresh tensor from every leaf whose
output the forward pass modifies in place, and gives every call of a reused parameter-free
module its own instance; its outputs equal the original's.
"""

from __future__ import annotations

import copy
from collections import Counter

import torch
from torch import nn


class PerCall(nn.Module):
    """Stands for a parameter-free module called `calls` times per forward pass: call i runs copy i."""

    def __init__(self, module: nn.Module, calls: int):
        super().__init__()
        self.copies = nn.ModuleList(copy.deepcopy(module) for _ in range(calls))
        self.next = 0

    def forward(self, *args, **kwargs):
        module = self.copies[self.next]
        self.next = (self.next + 1) % len(self.copies)
        return module(*args, **kwargs)


def hookable_copy(module: nn.Module, example: torch.Tensor) -> nn.Module:
    """An evaluation-mode copy of `module` that hook-based explainers can read; `example` (a few
    model inputs) runs once to show how often each leaf is called and which outputs change in place."""
    clone = copy.deepcopy(module).eval()
    for m in clone.modules():
        if getattr(m, "inplace", None) is True:
            m.inplace = False
    calls: Counter[int] = Counter()
    outputs: list[tuple[int, torch.Tensor, int]] = []

    def record(m, _, out):
        calls[id(m)] += 1
        if isinstance(out, torch.Tensor):
            outputs.append((id(m), out, out._version))

    leaves = [m for m in clone.modules() if not any(True for _ in m.children())]
    hooks = [m.register_forward_hook(record) for m in leaves]
    try:
        with torch.no_grad():
            clone(example)
    finally:
        for hook in hooks:
            hook.remove()
    modified = {key for key, out, version in outputs if out._version != version}
    reused = {id(m) for m in leaves if calls[id(m)] > 1 and _stateless(m)}
    replaced: dict[int, nn.Module] = {}
    for parent in list(clone.modules()):
        for name, child in list(parent.named_children()):
            key = id(child)
            if key in reused or key in modified:
                if key not in replaced:
                    replacement = PerCall(child, calls[key]) if key in reused else child
                    replaced[key] = OutOfPlace(replacement) if key in modified else replacement
                setattr(parent, name, replaced[key])
    return clone


class OutOfPlace(nn.Module):
    """Returns a fresh tensor, so the caller's in-place update leaves the hooked output intact."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self.module = module

    def forward(self, *args, **kwargs):
        return self.module(*args, **kwargs).clone()


def _stateless(module: nn.Module) -> bool:
    """A leaf module that holds no parameters or buffers (activations, pooling, dropout)."""
    return (not any(True for _ in module.children()) and not any(True for _ in module.parameters())
            and not any(True for _ in module.buffers()))
