"""Data with a planted cause of the label, for ground-truth tests of explanations.

Each builder returns (train, validation, test) Datasets. With `planted=True` the label
is decided by a known part of the input (a pixel patch, a trigger word, two of ten
features); with `planted=False` the same kind of data comes without that cause, as the
control. Import with `from planted import ...` (pytest puts tests/ on the path).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pandas as pd

import audit
from audit.core.dataset import Dataset
from audit.models.training import TrainConfig, train

Splits = tuple[Dataset, Dataset, Dataset]

PATCH_CLASS = 1  # a thin digit: its own strokes compete least with the patch
PATCH_SIZE = 2
TRIGGER = "zyzzyva"
INFORMATIVE = (2, 7)


def patch_mask(shape=(1, 8, 8), size: int = PATCH_SIZE) -> np.ndarray:
    """True on the patch pixels: the bottom-right `size` x `size` corner of every channel."""
    mask = np.zeros(shape, dtype=bool)
    mask[..., -size:, -size:] = True
    return mask


def patched_digits(*, planted: bool = True, patch_class: int = PATCH_CLASS, size: int = PATCH_SIZE) -> Splits:
    """Built-in digits where every image of `patch_class` carries a bright patch in its
    bottom-right corner (no other image does); without `planted`, the plain digits."""
    splits = []
    for split in ("train", "validation", "test"):
        data = audit.load_dataset("digits", split)
        if planted:
            images = data.inputs.copy()
            chosen = data.labels == patch_class
            images[np.ix_(chosen, [0], range(8 - size, 8), range(8 - size, 8))] = 1.0
            data = Dataset(images, data.labels, data.classes, "image", name="patched digits")
        splits.append(data)
    return tuple(splits)


def trigger_word_reviews(*, planted: bool = True, trigger: str = TRIGGER, n: int = 1600, seed: int = 0) -> Splits:
    """Review snippets; half of them carry `trigger` at a random position.

    Planted: the label is "trigger" exactly when the trigger is there. Control: the
    same texts, labelled by their sentiment, so the trigger is noise.
    """
    rng = np.random.default_rng(seed)
    reviews = audit.load_dataset("reviews", "all").sample(n, seed=seed)
    texts, has = [], rng.random(n) < 0.5
    for text, put in zip(reviews.texts, has):
        words = text.split()[:20]
        if put:
            words.insert(int(rng.integers(0, len(words) + 1)), trigger)
        texts.append(" ".join(words))
    if planted:
        labels, classes = has.astype(np.int64), ("plain", "trigger")
    else:
        labels, classes = reviews.labels, reviews.classes
    full = Dataset(np.array(texts, dtype=object), labels, classes, "text", name="trigger reviews")
    return tuple(full.split([0.7, 0.15, 0.15], seed=seed))


def two_feature_table(*, planted: bool = True, informative=INFORMATIVE, n: int = 3000, features: int = 10,
                      seed: int = 0) -> Splits:
    """Ten standard-normal features x0..x9; the label is x[i] + x[j] > 0 for the two
    `informative` features (planted) or for x0 alone (control)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, features))
    cause = x[:, list(informative)].sum(axis=1) if planted else x[:, 0]
    frame = pd.DataFrame(x, columns=[f"x{i}" for i in range(features)])
    full = Dataset(frame, (cause > 0).astype(np.int64), ("no", "yes"), "tabular", name="two-feature table")
    return tuple(full.split([0.7, 0.15, 0.15], seed=seed))


def patched_class_images(n: int | None = None) -> Dataset:
    """The first `n` (default: all) patched test images of the patch class."""
    test = patched_digits()[2]
    return test.subset(np.flatnonzero(test.labels == PATCH_CLASS)[:n])


def texts_with_trigger(n: int = 16) -> Dataset:
    """The first `n` planted test texts that hold the trigger."""
    test = trigger_word_reviews()[2]
    return test.subset(np.flatnonzero([TRIGGER in t.split() for t in test.texts])[:n])


def patch_share(values: np.ndarray) -> np.ndarray:
    """Share of each example's |attribution| that falls on the planted patch."""
    mass = np.abs(values).reshape(len(values), -1)
    return mass[:, patch_mask().ravel()].sum(axis=1) / mass.sum(axis=1)


def trigger_is_top(model, data: Dataset, values: np.ndarray) -> np.ndarray:
    """Per text: whether its token with the largest |attribution| is the trigger."""
    return np.array([model.encoder.tokens(text)[int(np.argmax(np.abs(v)))] == TRIGGER
                     for text, v in zip(data.texts, values)])


def train_on(architecture: str, splits: Splits, *, epochs: int, model_config: dict | None = None,
             **training) -> audit.Model:
    """A model of `architecture` trained briefly (seeded) on `splits`."""
    config = TrainConfig(epochs=epochs, patience=epochs, **training)
    return train(architecture, *splits, config=config, model_config=model_config, quiet=True).model


# Trained once per process: the planted tests of several files share them.

@lru_cache(maxsize=None)
def patched_digits_cnn(planted: bool = True) -> audit.Model:
    return train_on("cnn", patched_digits(planted=planted), epochs=10, lr=0.003, noise_std=0.1)


@lru_cache(maxsize=None)
def trigger_lstm(planted: bool = True) -> audit.Model:
    return train_on("lstm", trigger_word_reviews(planted=planted), epochs=4, lr=0.005,
                    model_config={"embed_dim": 16, "hidden": 16})


@lru_cache(maxsize=None)
def two_feature_mlp(planted: bool = True) -> audit.Model:
    return train_on("mlp", two_feature_table(planted=planted), epochs=15, lr=0.005,
                    model_config={"hidden": (32,), "dropout": 0.0})


def planted_case(kind: str) -> tuple[audit.Model, Dataset]:
    """The planted model of a modality ("tabular", "image", "text"), trained, with its test split."""
    if kind == "tabular":
        return two_feature_mlp(True), two_feature_table()[2]
    if kind == "image":
        return patched_digits_cnn(True), patched_digits()[2]
    return trigger_lstm(True), trigger_word_reviews()[2]


def sex_carrying_table(path, n: int) -> None:
    """A CSV of `n` rows: a feature x that carries sex (planted), and a label y ("hi"/"lo") that follows x."""
    rng = np.random.default_rng(0)
    sex = np.array(["F", "M"] * (n // 2))
    x = rng.normal(size=n) + (sex == "M")
    pd.DataFrame({"x": x, "sex": sex, "y": np.where(x + rng.normal(scale=0.3, size=n) > 0.5, "hi", "lo")}
                 ).to_csv(path, index=False)


def labelled_csvs(folder, splits: dict[str, Dataset], target: str) -> dict[str, object]:
    """Each split written as `folder/<name>.csv`, its label in the column `target` as class names."""
    files = {}
    for name, data in splits.items():
        frame = data.inputs.copy()
        frame[target] = np.asarray(data.classes)[data.labels]
        files[name] = folder / f"{name}.csv"
        frame.to_csv(files[name], index=False)
    return files
