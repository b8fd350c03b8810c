"""The passes that only score inputs fit the memory budget too: the model's own inference batches
(`Model.logits`), LIME's perturbed texts and its surrogate fits, and text SHAP's masked texts shrink under a
small budget, say so, and give the numbers of the unbounded run."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hf_helpers import random_bert, word_texts
from torch import nn
from torch.utils._python_dispatch import _get_current_dispatch_mode

import audit
from audit._util import memory as budget
from audit.core.passes import PEAK_FACTOR, activation_bytes
from audit.methods.attributions.lime_batch import FIT_ARRAYS
from audit.methods.attributions.lime_method import explain_lime
from audit.methods.attributions.shap_method import explain_shap

CLASSES = ["a", "b", "c"]
LIMIT = 1 << 30


def small_cnn() -> audit.Model:
    torch.manual_seed(0)
    module = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(),
                           nn.Linear(32, len(CLASSES)))
    return audit.wrap(module, modality="image", classes=CLASSES, input_shape=(3, 10, 10), batch_size=64)


def small_mlp(features: int) -> audit.Model:
    torch.manual_seed(0)
    module = nn.Sequential(nn.Linear(features, 16), nn.ReLU(), nn.Linear(16, 2))
    return audit.wrap(module, modality="tabular", classes=["a", "b"])


def arrays(rows: int, shape: tuple[int, ...], classes) -> audit.Dataset:
    rng = np.random.default_rng(0)
    return audit.Dataset.from_arrays(rng.random((rows, *shape), dtype=np.float32),
                                     rng.integers(0, len(classes), rows), classes=classes)


def within(monkeypatch, room: int | None, model: audit.Model, work):
    """(what `work()` returns, the rows of each forward pass it made, the notes) with the process read as holding
    all of a 1 GiB budget but `room` bytes (None: all of it free); the passes that measure activations (under a
    dispatch mode) are not counted."""
    monkeypatch.setattr(budget, "resident_bytes", lambda: LIMIT - (LIMIT if room is None else room))
    passes: list[int] = []

    def count(module, args):
        if _get_current_dispatch_mode() is None:
            passes.append(len(args[0]))

    hook = model.module.register_forward_pre_hook(count)
    try:
        with budget.noted() as notes, budget.limited(LIMIT):
            out = work()
    finally:
        hook.remove()
    return out, passes, notes


def test_inference_batches_shrink_with_the_same_probabilities(monkeypatch, capsys):
    model, data = small_cnn(), arrays(40, (3, 10, 10), CLASSES)
    per_row = activation_bytes(model, model.encode(data), backward=False)
    small, passes, notes = within(monkeypatch, PEAK_FACTOR * per_row * 7, model,
                                  lambda: model.predict_proba(data, cache=False))
    large, big, big_notes = within(monkeypatch, None, model, lambda: model.predict_proba(data, cache=False))
    assert max(passes) == 7 and big == [40], (passes, big)
    np.testing.assert_allclose(small, large, rtol=1e-6, atol=1e-7)
    assert notes == ["inference: passes of 7 rows instead of 64 " + notes[0].split(" instead of 64 ")[1]]
    assert notes[0].endswith(f"to stay within the memory budget of {audit._util.paths.format_size(LIMIT)}")
    assert not big_notes and "memory: inference: passes of 7 rows" in capsys.readouterr().err


@pytest.mark.parametrize("method", ["lime", "shap"])
def test_text_explainers_score_fewer_masked_texts_at_once_with_the_same_values(method, monkeypatch):
    model, data = random_bert(), word_texts(3)
    per_row = activation_bytes(model, model.encode(data), backward=False)  # the widest texts'
    explain = (lambda: explain_lime(model, data, seed=0, num_samples=200).values) if method == "lime" else \
        (lambda: explain_shap(model, data, seed=0, max_evals=100).values)
    small, passes, notes = within(monkeypatch, PEAK_FACTOR * per_row * 5, model, explain)
    large, big, big_notes = within(monkeypatch, None, model, explain)
    assert max(passes) < max(big), (passes, big)  # narrower texts fit more rows than the widest 5
    np.testing.assert_allclose(small, large, rtol=1e-5, atol=1e-6)
    assert any(n.startswith(f"{method} (masked texts): passes of") for n in notes), notes
    assert any(n.startswith("inference: passes of") for n in notes) and not big_notes


def test_lime_fits_fewer_table_surrogates_at_once_with_the_same_weights(monkeypatch):
    features, samples = 5, 300
    model, data = small_mlp(features), arrays(20, (features,), ["a", "b"])
    per_fit = FIT_ARRAYS * samples * features * 8
    explain = lambda: explain_lime(model, data, seed=0, num_samples=samples)  # noqa: E731
    small, _, notes = within(monkeypatch, PEAK_FACTOR * per_fit * 3, model, explain)
    large, _, big_notes = within(monkeypatch, None, model, explain)
    for field in ("values", "intercept", "score"):
        np.testing.assert_allclose(getattr(small, field), getattr(large, field), rtol=1e-9, atol=1e-12)
    assert any(n.startswith("lime (surrogate fits): passes of 3 rows instead of 64 ") for n in notes), notes
    assert not big_notes
