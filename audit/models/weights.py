"""Weights against the module they are for: the one check a checkpoint and a model spec both make."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch


def fit_problems(shapes: Mapping[str, Sequence[int]], expected: Mapping[str, torch.Tensor], needs: str) -> list[str]:
    """What keeps weights of these `shapes` (name -> shape) from the state dict `expected`: missing, unexpected and
    mis-shaped tensors, a phrase each; `needs` names who needs the shape ("the architecture", "the module")."""
    missing = [k for k in expected if k not in shapes]
    unexpected = [k for k in shapes if k not in expected]
    mis_shaped = [f"{k} is {shown_shape(shapes[k])}, {needs} needs {shown_shape(expected[k].shape)}"
                  for k in expected if k in shapes and tuple(shapes[k]) != tuple(expected[k].shape)]
    return [f"{what} {some(items)}" for what, items in (("missing", missing), ("unexpected", unexpected),
                                                          ("shape of", mis_shaped)) if items]


def some(items: list[str], shown_at_most: int = 3) -> str:
    more = len(items) - shown_at_most
    return ", ".join(items[:shown_at_most]) + (f" and {more} more" if more > 0 else "")


def shown_shape(shape: Sequence[int]) -> str:
    return "(" + ", ".join(map(str, shape)) + ")"
