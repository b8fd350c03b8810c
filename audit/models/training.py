"""One training loop for every registered architecture.

Seeded, mini-batch Adam with early stopping on validation accuracy; the best
validation state is kept. Optional Gaussian-noise augmentation on continuous inputs, and
one `TrainingHook` that changes what one optimizer step does: fairness-aware training
(`audit.models.fair_training.Mitigation`) or adversarial training
(`audit.mitigation.adversarial_training.PGDTraining`).
"""

from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass, replace
from typing import Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from audit._util import validate as check
from audit._util.errors import AuditInputError
from audit._util.progress import progress
from audit.core.dataset import Dataset
from audit.core.encoders import ENCODERS
from audit.core.model import Model, Task
from audit.models.registry import MODELS


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    epochs: int = 30
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.0
    patience: int = 5
    seed: int = 0
    include_sensitive: bool = False
    noise_std: float = 0.0

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        check.known_options(cls, d, "training")
        return cls(**d)


class TrainStep:
    """One optimizer step on a batch, on the cross-entropy unless a training method changes it; `rows` index the
    training data (for their groups)."""

    def __call__(self, module: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor,
                 rows: torch.Tensor) -> None:
        optimizer.zero_grad()
        self.loss(module(x), y, rows).backward()
        optimizer.step()

    def loss(self, logits: torch.Tensor, y: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, y)


class TrainingHook(Protocol):
    """A training method the loop plugs in: its step on the model about to be trained (`x_train` encoded,
    `labels` as class indices), and what the checkpoint records of it."""

    def step(self, model: Model, train_data: Dataset, x_train: torch.Tensor, labels: torch.Tensor,
             seed: int) -> TrainStep: ...

    def record(self, step: TrainStep) -> dict: ...


@dataclass(frozen=True)
class TrainingOutcome:
    model: Model
    test_accuracy: float
    validation_accuracy: float
    epochs: int
    seconds: float


def train(
    architecture: str,
    train_data: Dataset,
    validation: Dataset,
    test: Dataset,
    *,
    config: TrainConfig = TrainConfig(),
    model_config: dict | None = None,
    hook: TrainingHook | None = None,
    quiet: bool = False,
) -> TrainingOutcome:
    """Train `architecture` on `train_data`, early-stopping on `validation`, scored on `test`; `hook` changes
    what one optimizer step does."""
    entry = MODELS.get(architecture)
    if train_data.modality not in entry.modalities:
        raise AuditInputError(
            f"architecture {architecture!r} supports {', '.join(entry.modalities)} data; "
            f"{train_data.name} is {train_data.modality}"
        )
    start = time.perf_counter()
    torch.manual_seed(config.seed)
    exclude = () if config.include_sensitive else train_data.sensitive_names
    encoder = ENCODERS[train_data.modality].fit(train_data, exclude=exclude)
    full_config = {**(model_config or {}), **encoder.input_config(train_data), "num_classes": len(train_data.classes)}
    module = MODELS.create(architecture, **full_config)
    sensitive = tuple(c for c in train_data.sensitive_names if not config.include_sensitive)
    task = Task(
        modality=train_data.modality,
        classes=train_data.classes,
        encoder=encoder,
        dataset={k: v for k, v in train_data.source.items() if k != "split"},
        sensitive=sensitive,
        training=asdict(config),
    )
    model = Model(module, task, architecture=architecture, config=full_config)
    x_train, y_train = model.encode(train_data), torch.from_numpy(model.labels(train_data))
    x_val, y_val = model.encode(validation), model.labels(validation)
    continuous = _continuous_mask(model, train_data)
    step = TrainStep()
    if hook is not None:
        step = hook.step(model, train_data, x_train, y_train, config.seed)
        task = replace(task, training={**task.training, **hook.record(step)})

    generator = torch.Generator().manual_seed(config.seed)
    optimizer = torch.optim.Adam(module.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    best_acc, best_state, best_epoch, stale = -1.0, None, 0, 0
    epochs = progress(range(config.epochs), desc=f"train {architecture}", disable=quiet)
    for epoch in epochs:
        module.train()
        order = torch.randperm(len(x_train), generator=generator)
        for start_idx in range(0, len(order), config.batch_size):
            idx = order[start_idx : start_idx + config.batch_size]
            xb, yb = x_train[idx], y_train[idx].to(model.device)
            xb = model.without_padding(xb).to(model.device)
            if config.noise_std > 0 and continuous is not None:
                noise = torch.randn(xb.shape, generator=generator).to(model.device) * config.noise_std
                xb = xb + noise * continuous.to(model.device)
            step(module, optimizer, xb, yb, idx)
        module.eval()
        acc = float((model.proba(x_val).argmax(1) == y_val).mean())
        if hasattr(epochs, "set_postfix"):
            epochs.set_postfix(val_acc=f"{acc:.3f}")
        if acc > best_acc:
            best_acc, best_state, best_epoch, stale = acc, copy.deepcopy(module.state_dict()), epoch + 1, 0
        else:
            stale += 1
            if stale >= config.patience:
                break
    optimizer.zero_grad(set_to_none=True)
    module.load_state_dict(best_state)
    module.eval()
    test_acc = float((model.predict_proba(test).argmax(1) == model.labels(test)).mean())
    seconds = time.perf_counter() - start
    model.task = Task(**{**task.__dict__, "metrics": {
        "test_accuracy": test_acc, "validation_accuracy": best_acc, "epochs": best_epoch,
        "train_seconds": round(seconds, 2), "train_rows": len(train_data),
    }})
    return TrainingOutcome(model, test_acc, best_acc, best_epoch, seconds)


def _continuous_mask(model: Model, data: Dataset) -> torch.Tensor | None:
    """Which input dimensions take noise augmentation: all of an image, numeric table columns, none of text."""
    if model.modality == "text":
        return None
    if model.modality == "tabular":
        return torch.from_numpy(model.encoder.continuous_mask(data).astype(np.float32))
    return torch.ones(1)
