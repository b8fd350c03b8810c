"""Gradient attributions run in passes bounded by the memory their backward pass keeps
(`audit.methods.memory.PASS_BYTES`, measured per row by a probe forward pass), with the same
numbers as in unbounded passes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hf_helpers import random_bert, word_texts
from torch import nn

import audit
from audit.methods import memory
from audit.methods.attributions.explain import explain

FEATURES, HIDDEN = 6, 40


def mlp_model() -> audit.Model:
    torch.manual_seed(0)
    module = nn.Sequential(nn.Linear(FEATURES, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, 2))
    return audit.wrap(module, modality="tabular", classes=["a", "b"])


def table(rows: int) -> audit.Dataset:
    rng = np.random.default_rng(0)
    return audit.Dataset.from_arrays(rng.normal(size=(rows, FEATURES)).astype(np.float32), rng.integers(0, 2, rows),
                                     classes=["a", "b"])


def test_the_bytes_per_row_are_those_autograd_keeps():
    # Linear keeps its input (FEATURES floats a row) for the weight's gradient; ReLU keeps its output (HIDDEN
    # floats), which the second Linear keeps as its input (the same storage). Weights do not grow with rows.
    model = mlp_model()
    assert memory.activation_bytes(model, model.encode(table(3)), backward=True) == 4 * (FEATURES + HIDDEN)


def passes_and_values(model, data, method, bound_rows, monkeypatch, **options):
    """The rows of each forward pass and the attributions, with the bound set to `bound_rows` rows."""
    per_row = memory.activation_bytes(model, model.encode(data), backward=True)
    monkeypatch.setattr(memory, "PASS_BYTES", bound_rows * per_row)
    passes: list[int] = []
    hook = model.module.register_forward_pre_hook(lambda module, args: passes.append(len(args[0])))
    try:
        values = explain(model, data, method, target=np.zeros(len(data), dtype=int), **options)
    finally:
        hook.remove()
    return passes, values


@pytest.mark.parametrize("kind, method, options", [
    ("table", "integrated_gradients", {"n_steps": 20}),
    ("table", "occlusion", {}),
    ("text", "integrated_gradients", {"n_steps": 20}),
    ("text", "saliency", {}),
    ("text", "occlusion", {}),
])
def test_passes_hold_at_most_the_bound_and_give_the_unbounded_numbers(kind, method, options, monkeypatch):
    model, data = (mlp_model(), table(30)) if kind == "table" else (random_bert(), word_texts(12))
    passes, values = passes_and_values(model, data, method, 7, monkeypatch, **options)
    big, reference = passes_and_values(model, data, method, 10**9, monkeypatch, **options)
    assert max(passes) <= 7 < max(big), (passes, big)
    np.testing.assert_allclose(values, reference, rtol=1e-5, atol=1e-6)
