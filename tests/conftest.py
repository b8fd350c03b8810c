"""Shared fixtures: small models trained once per test session on the shipped data."""

from __future__ import annotations

import os

import pytest
import torch

import audit
from audit.models.training import TrainConfig, train

# Tests run in two pytest-xdist workers on two cores: one thread each avoids oversubscription.
# The notebook kernels and CLI subprocesses the tests start inherit the variable: without it a
# kernel's OpenMP threads spin against both workers and a 30 s notebook takes ten minutes.
torch.set_num_threads(1)
os.environ["OMP_NUM_THREADS"] = "1"


def train_quick(architecture: str, dataset: str, *, epochs: int, model_config: dict | None = None,
                **training) -> audit.Model:
    """A model trained briefly on a built-in dataset's train split (seeded)."""
    splits = [audit.load_dataset(dataset, split) for split in ("train", "validation", "test")]
    config = TrainConfig(epochs=epochs, patience=epochs, **training)
    return train(architecture, *splits, config=config, model_config=model_config, quiet=True).model


@pytest.fixture(scope="session")
def digits_cnn() -> audit.Model:
    return train_quick("cnn", "digits", epochs=10, lr=0.002)


@pytest.fixture(scope="session")
def adult_mlp() -> audit.Model:
    return train_quick("mlp", "adult", epochs=3, batch_size=256)


@pytest.fixture(scope="session")
def compas_mlp() -> audit.Model:
    return train_quick("mlp", "compas", epochs=8)


@pytest.fixture(scope="session")
def reviews_lstm() -> audit.Model:
    return train_quick("lstm", "reviews", epochs=3, lr=0.003, model_config={"embed_dim": 32, "hidden": 32})


@pytest.fixture(scope="session")
def adult_fit_and_test():
    """Samples of adult's validation split (3,000 rows, to fit post-processing on) and test split (2,000)."""
    validation = audit.load_dataset("adult", "validation").sample(3000, seed=1)
    test = audit.load_dataset("adult", "test").sample(2000, seed=2)
    return validation, test


def pytest_configure(config):
    config.addinivalue_line("markers", "cuda: runs the audit on a CUDA GPU; deselected where torch sees none")


def pytest_collection_modifyitems(config, items):
    """Deselect (not skip) the `cuda` tests where there is no GPU: a skip would read as a check not made."""
    if torch.cuda.is_available():
        return
    deselected = [item for item in items if item.get_closest_marker("cuda")]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = [item for item in items if not item.get_closest_marker("cuda")]
