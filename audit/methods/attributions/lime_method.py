"""LIME weights from the lime library, for the target class only.

Every explanation is a pure function of (model, instance, target, settings, seed): the
weights are those of a lime explainer seeded with `seed` for that instance, and all
perturbations are scored in big batches (lime's image explainer scores 10 per call by
default). All instances are computed at once by `lime_batch`, which reproduces lime's
draws and fits (lime itself spends most of its time in per-instance Python and
scikit-learn overhead); a perturbation that recurs for an instance is scored once.

- Tables: `LimeTabularExplainer` with discretization off over the raw columns: the
  (standardized) numeric features, and each one-hot group as one categorical column that
  lime samples as a whole from its training frequencies (sampling the indicators one by
  one would give rows with several or no categories). A numeric weight is the change in
  the target probability per training standard deviation; a categorical weight that of
  keeping the instance's category, placed on its active indicator in model space.
- Images: `LimeImageExplainer` over superpixels: SLIC (scikit-image) with about
  SUPERPIXELS segments per image from SUPERPIXEL_SIDE pixels a side up, a regular grid
  of square cells below (lime's default quickshift finds a single segment on 8x8
  digits); hidden segments take the data's low value (black), and each segment's weight
  is spread equally over its pixels and channels, so they add up to it.
- Text: `LimeTextExplainer` over the words of each text by position (bow=False,
  `audit.core.words`); a hidden word becomes lime's mask word, outside the vocabulary,
  i.e. the unknown-word token (one for all its subwords, for a Hugging Face tokenizer).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
from skimage.segmentation import slic

from audit.methods.attributions.lime_batch import (IMAGE_KERNEL_WIDTH, TEXT_KERNEL_WIDTH, distinct_rows, image_masks,
                                          mask_lime, tabular_lime, text_masks)
from audit.methods.attributions.registry import register_method
from audit.methods.attributions.sampling import training_sample
from audit.methods.attributions.targets import resolve_target
from audit.methods.memory import rows_per_pass
from audit.core.dataset import Dataset
from audit.core.words import hide_words, word_counts

DEFAULT_SAMPLES = 1000
DEFAULT_GRID = 4  # segments per image side, for images too small for superpixels
SUPERPIXELS = 50  # SLIC segments per image: about lime's quickshift count on 224-pixel photos
SUPERPIXEL_SIDE = 32  # images at least this many pixels a side are cut into superpixels
TRAINING_ROWS = 1000  # rows of the training split lime's tabular sampler learns from
FORWARD_BATCH = 4096  # perturbed images or texts per forward pass (images: fewer where they do not fit in memory)


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


def image_segments(x: torch.Tensor, low: float, high: float, grid: int = DEFAULT_GRID) -> list[np.ndarray]:
    """Segment ids (H, W) per image: SLIC superpixels of images SUPERPIXEL_SIDE pixels a side or
    more, else the `grid` x `grid` cells."""
    _, channels, height, width = x.shape
    if min(height, width) < SUPERPIXEL_SIDE:
        return [grid_segments(height, width, grid)] * len(x)
    # Pixels on a 0-100 scale (CIELAB's lightness range), where SLIC's default compactness of 10
    # balances colour and distance as it does for colour photos.
    scaled = ((x.numpy() - low) / (high - low) * 100.0).transpose(0, 2, 3, 1).astype(np.float64)
    return [slic(image, n_segments=SUPERPIXELS, compactness=10.0, start_label=0, channel_axis=-1,
                 convert2lab=False) for image in scaled]


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
    weights, intercept, score = tabular_lime(classify, training, raw, target, categorical=columns.categorical,
                                             seed=seed, num_samples=num_samples)
    values = np.stack([columns.weights_to_model(w, row) for w, row in zip(weights, raw)])
    return LimeExplanation(values, tuple(weights), intercept, score, target,
                           background=f"perturbations sampled from {source}")


def _explain_images(model, x, target, *, seed, num_samples, grid) -> LimeExplanation:
    low = torch.tensor(model.encoder.low, dtype=x.dtype)
    segments = image_segments(x, model.encoder.low, model.encoder.high, grid)
    counts = np.array([int(s.max()) + 1 for s in segments])
    masks = {n: image_masks(n, seed=seed, num_samples=num_samples) for n in np.unique(counts)}
    labels = np.zeros((len(x), num_samples))
    rows = rows_per_pass(model, x, rows=min(FORWARD_BATCH, len(x) * num_samples), backward=False, what="lime")
    per_call = max(1, rows // num_samples)
    classify = _image_classifier(model, rows)
    for start in range(0, len(x), per_call):
        chunk = range(start, min(start + per_call, len(x)))
        images, inverses = [], []
        for i in chunk:
            # Hiding a segment that is blank already changes nothing: masks that differ only on
            # blank segments give the same image, which is scored once.
            in_segment = np.eye(counts[i], dtype=np.int64)[segments[i].ravel()]  # (pixels, segments)
            blank = ((x[i] == low).all(dim=0).reshape(-1).numpy() @ in_segment) == in_segment.sum(axis=0)
            first, inverse = distinct_rows(masks[counts[i]].astype(bool) | blank)
            hidden = torch.from_numpy(masks[counts[i]][first][:, segments[i]] == 0)[:, None]
            images.append(torch.where(hidden, low, x[i]))
            inverses.append((len(first), inverse))
        proba = classify(torch.cat(images))
        offset = 0
        for i, (distinct, inverse) in zip(chunk, inverses):
            labels[i] = proba[offset + inverse, target[i]]
            offset += distinct
    weights: list[np.ndarray] = [np.zeros(0)] * len(x)
    intercept, score = np.zeros(len(x)), np.zeros(len(x))
    for n in np.unique(counts):  # images with as many segments share lime's masks
        rows = np.flatnonzero(counts == n)
        fitted, intercept[rows], score[rows] = mask_lime(labels[rows], masks[n], kernel_width=IMAGE_KERNEL_WIDTH)
        for i, w in zip(rows, fitted):
            weights[i] = w
    channels = x.shape[1]
    per_pixel = np.stack([(w / (np.bincount(s.ravel(), minlength=len(w)) * channels))[s]
                          for w, s in zip(weights, segments)])
    values = np.broadcast_to(per_pixel[:, None], x.shape).copy()
    return LimeExplanation(values, tuple(weights), intercept, score, target, segments=np.stack(segments),
                           background=f"hidden segments set to {model.encoder.low:g}")


def _image_classifier(model, rows: int):
    """`model.proba` for images, in batches of `rows` (FORWARD_BATCH where they fit: Model's 512 is ~1.5x slower
    for a small CNN on a CPU), on a copy of the module with channels-last weights (oneDNN runs small convolutions
    about twice as fast that way; the values are the same up to float rounding)."""
    module = copy.deepcopy(model.module).to(memory_format=torch.channels_last)

    def classify(x: torch.Tensor) -> np.ndarray:
        outs = []
        with torch.inference_mode():
            for start in range(0, len(x), rows):
                batch = x[start : start + rows].to(model.device).contiguous(memory_format=torch.channels_last)
                outs.append(module(batch).float().cpu())
        return torch.softmax(torch.cat(outs), dim=-1).numpy().astype(np.float64)

    return classify


def _explain_texts(model, data, target, *, seed, num_samples) -> LimeExplanation:
    tokenizer = model.encoder
    ids = model.encode(data)
    index = tokenizer.word_index(data.texts)
    lengths = word_counts(index)
    values = np.zeros((len(data), tokenizer.max_length))
    local = [np.zeros(0)] * len(data)
    intercept, score = np.full(len(data), np.nan), np.full(len(data), np.nan)
    for n in np.unique(lengths[lengths > 0]):  # texts of one length share lime's masks
        rows = np.flatnonzero(lengths == n)
        masks = text_masks(int(n), seed=seed, num_samples=num_samples)
        first, inverse = distinct_rows(masks.astype(bool))  # each distinct perturbation is scored once
        on = masks[first].astype(bool)
        labels = np.zeros((len(rows), num_samples))
        per_call = max(1, FORWARD_BATCH // len(first))
        for start in range(0, len(rows), per_call):
            chunk = rows[start : start + per_call]
            size = int((ids[chunk] != tokenizer.PAD).sum(dim=1).max())  # n for our Tokenizer; subwords may be more
            kept = ids[chunk, None, :size].expand(-1, len(first), -1).reshape(-1, size)
            where = np.repeat(index[chunk, :size], len(first), axis=0)
            perturbed = hide_words(kept, where, np.tile(~on, (len(chunk), 1)), tokenizer.UNK, tokenizer.PAD)
            proba = model.proba(perturbed).reshape(len(chunk), len(first), -1)
            labels[start : start + per_call] = proba[np.arange(len(chunk))[:, None], inverse[None], target[chunk, None]]
        weights, intercept[rows], score[rows] = mask_lime(labels, masks, kernel_width=TEXT_KERNEL_WIDTH,
                                                          distance_scale=100)
        values[rows, :n] = weights
        for i, w in zip(rows, weights):
            local[i] = w
    return LimeExplanation(values, tuple(local), intercept, score, target,
                           background="hidden words replaced by the unknown-word token")


@register_method("lime", description="LIME weights (lime: tabular, superpixel image and token explainers)")
def lime_attributions(model, data: Dataset, target=None, *, seed: int = 0, num_samples: int = DEFAULT_SAMPLES,
                      grid: int = DEFAULT_GRID) -> np.ndarray:
    return explain_lime(model, data, target, seed=seed, num_samples=num_samples, grid=grid).values
