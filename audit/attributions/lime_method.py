"""LIME weights from the lime library, for the target class only.

Every explanation is a pure function of (model, instance, target, settings, seed): each
instance gets its own lime explainer seeded with `seed`, and all of its perturbations
are scored in one batch (lime's image explainer scores 10 per call by default).

- Tables: `LimeTabularExplainer` with discretization off over the raw columns: the
  (standardized) numeric features, and each one-hot group as one categorical column that
  lime samples as a whole from its training frequencies (sampling the indicators one by
  one would give rows with several or no categories). A numeric weight is the change in
  the target probability per training standard deviation; a categorical weight that of
  keeping the instance's category, placed on its active indicator in model space.
- Images: `LimeImageExplainer` over a regular grid of square segments (lime's default
  quickshift finds a single segment on 8x8 digits); hidden segments take the data's
  low value (black), and each segment's weight is spread equally over its pixels and
  channels, so they add up to it.
- Text: `LimeTextExplainer` over the model's tokens by position (bow=False); a hidden
  token becomes a word outside the vocabulary, i.e. the unknown-word token.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
from lime import lime_image
from lime.lime_image import LimeImageExplainer
from lime.lime_tabular import LimeTabularExplainer
from lime.lime_text import LimeTextExplainer

from audit.attributions.registry import register_method
from audit.attributions.sampling import training_sample
from audit.attributions.targets import resolve_target
from audit.data.dataset import Dataset

DEFAULT_SAMPLES = 1000
DEFAULT_GRID = 4  # segments per image side
TRAINING_ROWS = 1000  # rows of the training split lime's tabular sampler learns from


@dataclass(frozen=True)
class LimeExplanation:
    """LIME weights of the target class, mapped to the model's input shape, with lime's
    own per-instance weights (`local`), the surrogate's intercept and R^2 (`score`)."""

    values: np.ndarray
    local: tuple[np.ndarray, ...]
    intercept: np.ndarray
    score: np.ndarray
    target: np.ndarray
    segments: np.ndarray | None = None
    background: str = ""


def explain_lime(model, data: Dataset, target=None, *, seed: int = 0, num_samples: int = DEFAULT_SAMPLES,
                 grid: int = DEFAULT_GRID) -> LimeExplanation:
    """LIME weights of the target (default: predicted) class for every example of `data`."""
    x = model.encode(data)
    target = resolve_target(model, data, target)
    if model.modality == "tabular":
        return _explain_table(model, data, x, target, seed=seed, num_samples=num_samples)
    if model.modality == "image":
        return _explain_images(model, x, target, seed=seed, num_samples=num_samples, grid=grid)
    return _explain_texts(model, data, target, seed=seed, num_samples=num_samples)


def grid_segments(height: int, width: int, grid: int = DEFAULT_GRID) -> np.ndarray:
    """Segment ids (H, W) of a grid of about `grid` x `grid` square cells."""
    cell = max(1, int(np.ceil(min(height, width) / grid)))
    columns = int(np.ceil(width / cell))
    rows, cols = np.indices((height, width))
    return (rows // cell) * columns + cols // cell


class RawColumns:
    """Model-space table features <-> lime's raw columns: the numeric features as they are,
    and one integer code per one-hot group (the index of its active indicator; the group's
    size when none is active, an unseen category)."""

    def __init__(self, model, n_features: int):
        encoder = model.encoder
        self.sizes = [] if encoder.passthrough else [len(c) for c in encoder.categorical.values()]
        self.numeric = n_features - sum(self.sizes)
        self.starts = self.numeric + np.concatenate([[0], np.cumsum(self.sizes)[:-1]]).astype(int)

    @property
    def categorical(self) -> list[int]:
        return list(range(self.numeric, self.numeric + len(self.sizes)))

    def to_raw(self, x: np.ndarray) -> np.ndarray:
        codes = [np.where(x[:, s : s + n].max(axis=1) > 0, x[:, s : s + n].argmax(axis=1), n)
                 for s, n in zip(self.starts, self.sizes)]
        return np.column_stack([x[:, : self.numeric], *codes]) if codes else x[:, : self.numeric]

    def to_model(self, raw: np.ndarray) -> np.ndarray:
        parts = [raw[:, : self.numeric]]
        for j, n in enumerate(self.sizes):
            parts.append(raw[:, self.numeric + j, None].astype(int) == np.arange(n)[None, :])
        return np.concatenate(parts, axis=1).astype(np.float32)

    def weights_to_model(self, weights: np.ndarray, raw_row: np.ndarray) -> np.ndarray:
        """Each raw column's weight on its model-space feature: a category's on the active indicator."""
        out = np.zeros(self.numeric + sum(self.sizes))
        out[: self.numeric] = weights[: self.numeric]
        for j, (s, n) in enumerate(zip(self.starts, self.sizes)):
            code = int(raw_row[self.numeric + j])
            if code < n:
                out[s + code] = weights[self.numeric + j]
        return out


def _explain_table(model, data, x, target, *, seed, num_samples) -> LimeExplanation:
    columns = RawColumns(model, x.shape[1])
    training, source = training_sample(model, data, TRAINING_ROWS, seed=seed)
    training = columns.to_raw(model.encode(training).numpy().astype(np.float64))
    raw = columns.to_raw(x.numpy().astype(np.float64))
    classify = lambda batch: model.proba(torch.from_numpy(columns.to_model(batch)))  # noqa: E731
    explanations, local = [], []
    for row, c in zip(raw, target):
        explainer = LimeTabularExplainer(training, mode="classification", categorical_features=columns.categorical,
                                         discretize_continuous=False, feature_selection="none", random_state=seed)
        explanations.append(explainer.explain_instance(row, classify, labels=(int(c),),
                                                       num_features=raw.shape[1], num_samples=num_samples))
        local.append(_weights(explanations[-1], c, raw.shape[1]))
    values = np.stack([columns.weights_to_model(w, row) for w, row in zip(local, raw)])
    return LimeExplanation(values, tuple(local), *_fit(explanations, target), target,
                           background=f"perturbations sampled from {source}")


def _explain_images(model, x, target, *, seed, num_samples, grid) -> LimeExplanation:
    _, _, height, width = x.shape
    segments = grid_segments(height, width, grid)
    n_segments = int(segments.max()) + 1

    def classify(images: np.ndarray) -> np.ndarray:  # lime passes (N, H, W, C)
        return model.proba(torch.from_numpy(images.transpose(0, 3, 1, 2).astype(np.float32)))

    explanations = []
    with _quiet_lime_image():
        for image, c in zip(x.numpy().astype(np.float64), target):
            explainer = LimeImageExplainer(feature_selection="none", random_state=seed)
            explanations.append(explainer.explain_instance(
                image.transpose(1, 2, 0), classify, labels=(int(c),), hide_color=model.encoder.low, top_labels=None,
                num_features=n_segments, num_samples=num_samples, batch_size=num_samples,
                segmentation_fn=lambda _: segments))
    local = tuple(_weights(e, c, n_segments) for e, c in zip(explanations, target))
    pixel_share = 1.0 / (np.bincount(segments.ravel(), minlength=n_segments) * x.shape[1])
    per_pixel = np.stack([(w * pixel_share)[segments] for w in local])
    values = np.broadcast_to(per_pixel[:, None], x.shape).copy()
    return LimeExplanation(values, local, *_fit(explanations, target), target, segments=segments,
                           background=f"hidden segments set to {model.encoder.low:g}")


def _explain_texts(model, data, target, *, seed, num_samples) -> LimeExplanation:
    tokenizer = model.encoder
    classify = lambda texts: model.proba(tokenizer.encode(texts))  # noqa: E731
    values = np.zeros((len(data), tokenizer.max_length))
    local, intercept, score = [], np.full(len(data), np.nan), np.full(len(data), np.nan)
    for i, (text, c) in enumerate(zip(data.texts, target)):
        tokens = tokenizer.tokens(text)
        if not tokens:
            local.append(np.zeros(0))
            continue
        explainer = LimeTextExplainer(split_expression=" ", bow=False, feature_selection="none", random_state=seed)
        # Joined by spaces, the model's tokens split back into exactly the same tokens.
        explanation = explainer.explain_instance(" ".join(tokens), classify, labels=(int(c),),
                                                 num_features=len(tokens), num_samples=num_samples)
        local.append(_weights(explanation, c, len(tokens)))
        values[i, : len(tokens)] = local[-1]
        (intercept[i],), (score[i],) = _fit([explanation], [c])
    return LimeExplanation(values, tuple(local), intercept, score, target,
                           background="hidden tokens replaced by the unknown-word token")


@contextmanager
def _quiet_lime_image() -> Iterator[None]:
    """lime 0.2.0.1's image explainer always draws a tqdm progress bar; silence it for the call."""
    original = lime_image.tqdm
    lime_image.tqdm = lambda iterable, *args, **kwargs: iterable
    try:
        yield
    finally:
        lime_image.tqdm = original


def _weights(explanation, label, n: int) -> np.ndarray:
    weights = np.zeros(n)
    for feature, weight in explanation.local_exp[int(label)]:
        weights[feature] = weight
    return weights


def _fit(explanations, target) -> tuple[np.ndarray, np.ndarray]:
    intercept = np.array([e.intercept[int(c)] for e, c in zip(explanations, target)])
    score = np.array([float(e.score) for e in explanations])
    return intercept, score


@register_method("lime", description="LIME weights (lime: tabular, grid-segmented image and token explainers)")
def lime_attributions(model, data: Dataset, target=None, *, seed: int = 0, num_samples: int = DEFAULT_SAMPLES,
                      grid: int = DEFAULT_GRID) -> np.ndarray:
    return explain_lime(model, data, target, seed=seed, num_samples=num_samples, grid=grid).values
