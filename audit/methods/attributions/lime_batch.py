"""lime's tabular, image and text explainers, computed for many instances at once.

Seeded with one seed, a fresh lime explainer per instance draws the same random numbers
for every instance, so every instance gets the same perturbations:
- tables: the same sampled rows (numeric columns from N(mean, std) of the training data,
  categories from their training frequencies), except row 0, the instance itself; the
  model scores the shared rows once instead of once per instance;
- images and texts: the same on/off masks of the segments (of the words, for texts of the
  same length), so the distances, kernel weights and design matrix of the weighted ridge
  fit are shared; one solve fits every instance.
The draws, distances, kernel (sqrt(exp(-d^2 / width^2))) and Ridge(alpha=1) fit with
sample weights follow lime 0.2.0.1 with feature_selection="none" step by step; lime's
per-instance Python and scikit-learn overhead was most of its time (benchmarks/explanations.py),
and tests/test_lime.py checks the weights against lime's own explain_instance.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from lime.lime_tabular import LimeTabularExplainer

IMAGE_KERNEL_WIDTH = 0.25  # LimeImageExplainer's default
TEXT_KERNEL_WIDTH = 25.0  # LimeTextExplainer's default
INSTANCES_PER_FIT = 64  # tables: instances whose (samples, columns) designs are held in memory at once, at most
#: (samples, columns) float64 arrays one table instance's fit holds at once: design, centred, weighted, a temporary
FIT_ARRAYS = 4


def tabular_lime(classify: Callable[[np.ndarray], np.ndarray], training: np.ndarray, rows: np.ndarray,
                 target: np.ndarray, *, categorical: list[int], seed: int, num_samples: int,
                 instances_per_fit: int = INSTANCES_PER_FIT) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(weights (N, columns), intercepts, R^2) of LimeTabularExplainer(training, categorical_features=categorical,
    discretize_continuous=False, feature_selection="none", random_state=seed).explain_instance for each row;
    the surrogates of `instances_per_fit` rows are fitted at once."""
    explainer = LimeTabularExplainer(training, mode="classification", categorical_features=categorical,
                                     discretize_continuous=False, feature_selection="none", random_state=seed)
    mean, scale = explainer.scaler.mean_, explainer.scaler.scale_
    random = explainer.random_state
    shared = random.normal(0, 1, num_samples * rows.shape[1]).reshape(num_samples, rows.shape[1]) * scale + mean
    for column in categorical:
        shared[:, column] = random.choice(explainer.feature_values[column], size=num_samples, replace=True,
                                          p=explainer.feature_frequencies[column])
    labels = classify(shared[1:])[:, target].T  # (N, samples - 1): row 0 is each instance itself
    y = np.concatenate([classify(rows)[np.arange(len(rows)), target][:, None], labels], axis=1)
    width = np.sqrt(rows.shape[1]) * 0.75
    scaled_shared = (shared - mean) / scale  # categorical columns have mean 0 and scale 1 in lime
    fits = []
    for start in range(0, len(rows), instances_per_fit):
        chunk = rows[start : start + instances_per_fit]
        scaled = np.broadcast_to(scaled_shared, (len(chunk), *shared.shape)).copy()
        scaled[:, 0] = (chunk - mean) / scale
        for column in categorical:  # 1 where the sample keeps the instance's category
            scaled[:, :, column] = shared[:, column] == chunk[:, None, column]
            scaled[:, 0, column] = 1
        distances = np.sqrt(((scaled - scaled[:, :1]) ** 2).sum(axis=2))
        weights = np.sqrt(np.exp(-(distances**2) / width**2))
        fits.append(weighted_ridge(scaled, y[start : start + instances_per_fit], weights))
    return tuple(np.concatenate(parts) for parts in zip(*fits))


def image_masks(n_segments: int, *, seed: int, num_samples: int) -> np.ndarray:
    """LimeImageExplainer(random_state=seed)'s on/off segment masks (samples, segments); row 0 all on."""
    random = np.random.RandomState(seed)
    random.randint(0, high=1000)  # explain_instance draws a segmentation seed first (unused with our segments)
    masks = random.randint(0, 2, num_samples * n_segments).reshape((num_samples, n_segments))
    masks[0, :] = 1
    return masks


def text_masks(n_words: int, *, seed: int, num_samples: int) -> np.ndarray:
    """LimeTextExplainer(random_state=seed)'s on/off masks (samples, words) for a text of `n_words`
    words; row 0 all on."""
    random = np.random.RandomState(seed)
    hidden = random.randint(1, n_words + 1, num_samples - 1)
    masks = np.ones((num_samples, n_words), dtype=np.int64)
    for row, size in enumerate(hidden, start=1):
        masks[row, random.permutation(n_words)[:size]] = 0  # = random.choice(range(n_words), size, replace=False)
    return masks


def mask_lime(labels: np.ndarray, masks: np.ndarray, *, kernel_width: float,
              distance_scale: float = 1.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(weights (N, features), intercepts, R^2) of lime's fits on on/off `masks` (samples, features) shared by
    all instances, from each instance's target probabilities `labels` (N, samples). The distance is the cosine
    distance to the all-on row times `distance_scale`: LimeImageExplainer uses width IMAGE_KERNEL_WIDTH and
    scale 1, LimeTextExplainer TEXT_KERNEL_WIDTH and 100."""
    ones = np.sqrt(masks.shape[1])
    norms = np.sqrt(masks.sum(axis=1))
    similarity = np.divide(masks.sum(axis=1), norms * ones, out=np.zeros(len(masks)), where=norms > 0)
    distances = np.clip(1 - similarity, 0, 2) * distance_scale
    weights = np.sqrt(np.exp(-(distances**2) / kernel_width**2))
    return weighted_ridge(masks.astype(np.float64)[None], labels, weights[None])


def distinct_rows(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(index of the first of each distinct row, index of each row's distinct row) of a boolean
    matrix, each row packed into 64-bit words (np.unique over whole rows is ~20x slower)."""
    packed = np.packbits(rows, axis=1)
    words = np.pad(packed, ((0, 0), (0, -packed.shape[1] % 8))).view(np.uint64)
    keys = words[:, 0] if words.shape[1] == 1 else words
    _, first, inverse = np.unique(keys, axis=0 if keys.ndim > 1 else None, return_index=True, return_inverse=True)
    return first, inverse.ravel()


def weighted_ridge(x: np.ndarray, y: np.ndarray, w: np.ndarray, alpha: float = 1.0):
    """scikit-learn's Ridge(alpha, fit_intercept=True).fit(x[i], y[i], sample_weight=w[i]) and its weighted
    R^2 score, for a batch: x (N or 1, samples, features), y (N, samples), w (N or 1, samples).
    Returns (coef (N, features), intercept (N,), score (N,))."""
    total = w.sum(axis=1, keepdims=True)
    x_mean = (w[..., None] * x).sum(axis=1) / total
    y_mean = (w * y).sum(axis=1, keepdims=True) / total
    xc = x - x_mean[:, None]
    yc = y - y_mean
    xw = np.swapaxes(xc * w[..., None], 1, 2)
    gram = xw @ xc + alpha * np.eye(x.shape[2])
    coef = np.linalg.solve(gram, xw @ yc[..., None])[..., 0]
    intercept = y_mean[:, 0] - (x_mean * coef).sum(axis=1)
    residual = (w * (y - (x @ coef[..., None])[..., 0] - intercept[:, None]) ** 2).sum(axis=1)
    spread = (w * yc**2).sum(axis=1)
    score = np.where(spread > 0, 1 - residual / np.where(spread > 0, spread, 1), np.where(residual > 0, 0.0, 1.0))
    return coef, intercept, score
