"""Contract over every registered architecture: train a tiny instance, save, reload, predict identically."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

import audit
from audit.io.checkpoint import save
from audit.models.checkpoint import load
from audit.models import MODELS
from audit.models.training import TrainConfig, train


def tiny_data(modality: str, n: int = 120, seed: int = 0) -> audit.Dataset:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    if modality == "tabular":
        frame = pd.DataFrame({"a": rng.normal(size=n) + y, "b": rng.normal(size=n),
                              "c": rng.choice(["x", "y", "z"], n), "label": np.where(y, "yes", "no")})
        return audit.Dataset.from_dataframe(frame, target="label", name="tiny")
    if modality == "image":
        x = rng.random((n, 1, 8, 8)).astype(np.float32)
        x[y == 1, :, :4] += 0.5
        return audit.Dataset.from_arrays(np.clip(x, 0, 1), y, name="tiny")
    words = np.array(["good", "bad", "film", "plot", "actor", "scene", "the", "a"])
    texts = [" ".join(rng.choice(words[2:], 5)) + (" good" if label else " bad") for label in y]
    return audit.Dataset.from_arrays(texts, np.where(y, "pos", "neg"), modality="text", name="tiny")


def all_hooks(module: torch.nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks) for m in module.modules())


@pytest.mark.parametrize("entry", MODELS.entries(), ids=lambda e: e.name)
def test_architecture_contract(entry, tmp_path):
    data = tiny_data(entry.modalities[0])
    train_part, val_part, test_part = data.split([0.6, 0.2, 0.2], seed=0)
    outcome = train(entry.name, train_part, val_part, test_part, config=TrainConfig(epochs=2, seed=1), quiet=True)
    model = outcome.model
    hooks_before = all_hooks(model.module)
    proba = model.predict_proba(test_part)
    assert proba.shape == (len(test_part), 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)

    path = save(model, tmp_path / f"{entry.name}.pt")
    reloaded = load(path)
    np.testing.assert_array_equal(reloaded.predict_proba(test_part), proba)
    assert reloaded.task == model.task
    assert reloaded.architecture == entry.name
    assert all_hooks(reloaded.module) == hooks_before == 0
    assert all(p.requires_grad for p in reloaded.module.parameters())
    assert not reloaded.module.training


@pytest.mark.parametrize("entry", MODELS.entries(), ids=lambda e: e.name)
def test_training_is_deterministic(entry):
    data = tiny_data(entry.modalities[0], n=80)
    parts = data.split([0.6, 0.2, 0.2], seed=0)
    config = TrainConfig(epochs=2, seed=3)
    first = train(entry.name, *parts, config=config, quiet=True).model
    second = train(entry.name, *parts, config=config, quiet=True).model
    np.testing.assert_array_equal(first.predict_proba(parts[2]), second.predict_proba(parts[2]))


def test_text_predictions_do_not_depend_on_batch_padding(reviews_lstm):
    data = audit.load_dataset("reviews", "test").sample(64, seed=0)
    together = reviews_lstm.predict_proba(data)
    one_by_one = np.vstack([reviews_lstm.predict_proba([text]) for text in data.texts[:8]])
    np.testing.assert_allclose(one_by_one, together[:8], atol=1e-5)


def test_architecture_rejects_wrong_modality():
    data = tiny_data("image")
    parts = data.split([0.6, 0.2, 0.2], seed=0)
    with pytest.raises(audit.AuditInputError, match="'mlp' supports tabular data"):
        train("mlp", *parts, quiet=True)


def test_unknown_architecture_is_named():
    with pytest.raises(audit.AuditInputError, match="unknown architecture 'resnet'; registered: mlp, cnn"):
        MODELS.get("resnet")


def test_wrapped_text_module_sees_the_full_padded_length():
    """Only modules that declare `padding_invariant` get trailing padding trimmed."""
    data = tiny_data("text", n=30)
    tokenizer = audit.Tokenizer.fit(data, min_count=1, max_length=16)

    class FixedLength(torch.nn.Module):  # reads every position, so it needs exactly max_length ids
        def __init__(self):
            super().__init__()
            self.embedding = torch.nn.Embedding(len(tokenizer.vocab), 4)
            self.head = torch.nn.Linear(16 * 4, 2)

        def forward(self, ids):
            return self.head(self.embedding(ids).flatten(1))

    model = audit.wrap(FixedLength(), modality="text", classes=data.classes, tokenizer=tokenizer)
    x = model.encode(data)
    expected = torch.softmax(model.module(x), dim=1).detach().numpy()
    np.testing.assert_allclose(model.predict_proba(data), expected, rtol=1e-5)
