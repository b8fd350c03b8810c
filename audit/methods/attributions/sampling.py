"""The examples explainers explain and draw from, and the seeding of the global generators
the libraries sample from."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch

from audit.io.builtin import load_dataset
from audit.core.dataset import Dataset
from audit._util.errors import AuditInputError


def explained_samples(model, data: Dataset, n: int, *, seed: int, misclassified: bool = True) -> np.ndarray:
    """Sorted indices of at most `n` examples drawn with `seed`: with `misclassified`, up to half
    of them misclassified ones; without, drawn uniformly (as `Dataset.sample`)."""
    if n < 1:
        raise AuditInputError(f"samples must be at least 1, not {n}")
    if n >= len(data):
        return np.arange(len(data))
    rng = np.random.default_rng(seed)
    if not misclassified:
        return np.sort(rng.choice(len(data), size=n, replace=False))
    wrong = model.predict(data) != model.labels(data)
    wrong_idx, right_idx = np.flatnonzero(wrong), np.flatnonzero(~wrong)
    n_wrong = misclassified_count(n, wrong=len(wrong_idx), right=len(right_idx))
    n_right = min(len(right_idx), n - n_wrong)
    chosen = np.concatenate([rng.choice(wrong_idx, n_wrong, replace=False),
                             rng.choice(right_idx, n_right, replace=False)])
    return np.sort(chosen)


def misclassified_count(n: int, *, wrong: int, right: int) -> int:
    """How many of `n` examples to take from `wrong` misclassified and `right` correct ones:
    half where there are enough, more when the correct ones run short."""
    return min(wrong, max(n // 2, n - right))


def training_sample(model, data: Dataset, size: int, *, seed: int) -> tuple[Dataset, str]:
    """Up to `size` rows of the model's training split, or of `data` when the model names no built-in one."""
    name = model.task.dataset.get("builtin")
    if name:
        return load_dataset(name, "train").sample(size, seed=seed), f"{size} rows of the {name} training split"
    return data.sample(size, seed=seed), (
        f"{min(size, len(data))} rows of the audited data (the model names no built-in training set)")


def background_sample(model, pool: Dataset | None, size: int, *, seed: int) -> tuple[Dataset, str]:
    """Up to `size` background rows: of the model's training split where it names one, else drawn
    from `pool` (the audited data) across its classes (`stratified_sample`). A background of only the
    explained rows would hide every feature they share, so without either there is none."""
    name = model.task.dataset.get("builtin")
    if name:
        return load_dataset(name, "train").sample(size, seed=seed), f"{size} rows of the {name} training split"
    if pool is None:
        raise AuditInputError(
            "SHAP needs a background for a model that names no training split: pass background= (training rows: "
            "a Dataset, raw inputs or a tensor of model inputs); the explained rows alone would hide every "
            "feature they share")
    chosen = stratified_sample(pool.labels, size, seed=seed)
    return pool.subset(chosen), (f"{len(chosen)} rows of the audited data, drawn across its classes "
                                 "(the model names no training split)")


def stratified_sample(labels: np.ndarray, size: int, *, seed: int) -> np.ndarray:
    """Sorted indices of at most `size` rows, each class in proportion to its share of `labels`
    and every class at least once while there is room: first one row of each class, then the rows
    with the smallest rank within their class over the class size (ranks from a seeded shuffle)."""
    if size >= len(labels):
        return np.arange(len(labels))
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(labels))
    key = np.empty(len(labels))
    for c in np.unique(labels):
        rows = order[labels[order] == c]
        rank = np.arange(len(rows))
        key[rows] = np.where(rank == 0, -1.0, (rank + rng.random(len(rows))) / len(rows))
    return np.sort(np.argsort(key, kind="stable")[:size])


@contextmanager
def seeded(seed: int, device: torch.device | None = None) -> Iterator[None]:
    """Seed torch's generators (on `device` too when it is a GPU) and numpy's global one, which
    captum and shap draw from, restoring the caller's state afterwards."""
    devices = [device] if device is not None and device.type == "cuda" else []
    numpy_state = np.random.get_state()
    try:
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            np.random.seed(seed)
            yield
    finally:
        np.random.set_state(numpy_state)
