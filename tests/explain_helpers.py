"""Checks that explaining a model left nothing behind on it: hooks, gradients, weights."""

from __future__ import annotations

import torch
from torch import nn


def module_state(module: nn.Module):
    hooks = [(name, len(m._forward_hooks), len(m._forward_pre_hooks), len(m._backward_hooks),
              len(m._backward_pre_hooks)) for name, m in module.named_modules()]
    params = [(name, p.requires_grad, p.grad is None, p.detach().clone()) for name, p in module.named_parameters()]
    return hooks, params, len(torch.nn.modules.module._global_forward_hooks)


def assert_same_state(before, after):
    assert before[0] == after[0] and before[2] == after[2]
    for (name, grad, no_grad, value), (_, grad2, no_grad2, value2) in zip(before[1], after[1]):
        assert (grad, no_grad) == (grad2, no_grad2), name
        assert torch.equal(value, value2), name


def no_hooks_left(module: nn.Module) -> bool:
    """No hooks, nor the inputs shap's DeepExplainer stores on modules as `.x`."""
    return all(not (m._forward_hooks or m._backward_hooks or m._forward_pre_hooks or hasattr(m, "x"))
               for m in module.modules())
