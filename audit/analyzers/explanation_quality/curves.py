"""Deletion and insertion curves of several removal orders, scored in shared, batched forward passes.

A curve has `steps + 1` points: at point k the first round(n k / steps) of an example's n features (in
the order's descending score) are removed (deletion) or are the only ones kept (insertion). Inputs that
are the same are scored once: the whole input and the empty one (every curve's two ends, for every order),
and points of one order that remove as many features (few features, many steps). Every pass holds the
points of all orders and both curves.

Adaptive (`tolerance` not None): each curve starts from every `steps // 4`-th point, and a gap between two
scored points is halved, round after round, while their probabilities differ by more than `tolerance`; the
points in the gaps left are read off the straight line between their ends. Where the curve is monotone in
a gap, each point read off is within `tolerance` of the probability it stands for, so the area is within
`tolerance / 2` of the full curve's; a bump inside a gap whose ends agree is the one thing it can miss.
"""

from __future__ import annotations

import numpy as np
import torch

from audit.core.model import Model
from audit.core.words import hide_words, word_counts

#: Curves start from this many gaps when adaptive.
FIRST_GAPS = 4


def feature_mask(model: Model, x: torch.Tensor, words: np.ndarray | None = None) -> np.ndarray:
    """(N, P): True for the features of each example (columns, pixels, the word slots of a text: `words` is
    its encoder's `word_index`)."""
    if model.modality == "text":
        return np.arange(x.shape[1])[None, :] < word_counts(words)[:, None]
    if model.modality == "image":
        return np.ones((len(x), x.shape[-2] * x.shape[-1]), dtype=bool)
    return np.ones(tuple(x.shape), dtype=bool)


def removed(model: Model, x: torch.Tensor, remove: np.ndarray, words: np.ndarray | None = None) -> torch.Tensor:
    """`x` with the features marked in `remove` (N, P) set to the absent input (for text, the tokens of the
    marked word slots; `words` is the encoder's `word_index`)."""
    if model.modality == "text":
        return hide_words(x, words, remove, model.encoder.UNK, model.encoder.PAD)
    mask = torch.from_numpy(remove)
    if model.modality == "image":
        return x.masked_fill(mask.view(len(x), 1, *x.shape[-2:]), 0.0)
    return x.masked_fill(mask, 0.0)


def curves_of_orders(model: Model, x: torch.Tensor, orders: dict[str, np.ndarray], valid: np.ndarray,
                     target: np.ndarray, steps: int, *, words: np.ndarray | None = None,
                     tolerance: float | None = None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Deletion and insertion curves (N, steps + 1) per order (name -> scores (N, P), descending)."""
    n = len(x)
    counts = valid.sum(axis=1)
    sizes = np.round(counts[:, None] * np.arange(steps + 1)[None, :] / steps).astype(np.int64)  # removed at k
    ranks = {name: _ranks(np.where(valid, s, -np.inf)) for name, s in orders.items()}
    full, empty = _scored(model, torch.cat([x, removed(model, x, valid, words)]), np.tile(target, 2)).reshape(2, n)
    curves = {}  # (order, deletion?) -> (N, steps + 1), NaN where not scored yet
    for name in orders:
        for deletion in (True, False):
            curve = np.full((n, steps + 1), np.nan)
            curve[sizes == 0] = np.broadcast_to((full if deletion else empty)[:, None], curve.shape)[sizes == 0]
            whole = sizes == counts[:, None]
            curve[whole] = np.broadcast_to((empty if deletion else full)[:, None], curve.shape)[whole]
            curves[name, deletion] = curve
    first = np.arange(0, steps + 1, 1 if tolerance is None else max(1, steps // FIRST_GAPS))
    wanted = {key: [(i, k) for i in range(n) for k in sorted({*first, steps})] for key in curves}
    while any(wanted.values()):
        _score(model, x, ranks, valid, sizes, target, words, curves, wanted)
        wanted = {key: _gaps(curve, tolerance) for key, curve in curves.items()}
    return {name: (_filled(curves[name, True]), _filled(curves[name, False])) for name in orders}


def _ranks(scores: np.ndarray) -> np.ndarray:
    """(N, P): each feature's position in its row's descending order of `scores` (ties: the earlier first)."""
    order = np.argsort(-scores, axis=1, kind="stable")
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.broadcast_to(np.arange(order.shape[1]), order.shape), axis=1)
    return rank


def _score(model, x, ranks, valid, sizes, target, words, curves, wanted) -> None:
    """Score the `wanted` (example, point) entries of every curve not scored yet, in one batched pass; points
    of one curve and example that remove as many features share one input."""
    rows, masks, where = [], [], []
    for (name, deletion), entries in wanted.items():
        curve, seen = curves[name, deletion], set()
        for i, k in entries:
            size = sizes[i, k]
            if not np.isnan(curve[i, k]) or (i, size) in seen:
                continue
            seen.add((i, size))
            first = valid[i] & (ranks[name][i] < size)
            rows.append(i)
            masks.append(first if deletion else valid[i] & ~first)
            where.append((curve, i, sizes[i] == size))
    if not rows:
        return
    idx = np.asarray(rows)
    batch = removed(model, x[idx], np.stack(masks), None if words is None else words[idx])
    for (curve, i, points), p in zip(where, _scored(model, batch, target[idx])):
        curve[i, points] = p


def _scored(model: Model, x: torch.Tensor, target: np.ndarray) -> np.ndarray:
    return model.proba(x)[np.arange(len(x)), target]


def _gaps(curve: np.ndarray, tolerance: float | None) -> list[tuple[int, int]]:
    """The middle points of the gaps between scored points whose probabilities differ by more than `tolerance`."""
    if tolerance is None:
        return []
    wanted = []
    for i, row in enumerate(curve):
        known = np.flatnonzero(~np.isnan(row))
        for a, b in zip(known[:-1], known[1:]):
            if b - a > 1 and abs(row[b] - row[a]) > tolerance:
                wanted.append((i, int((a + b) // 2)))
    return wanted


def _filled(curve: np.ndarray) -> np.ndarray:
    """`curve` with the points not scored read off the straight line between the scored points around them."""
    out = curve.copy()
    ks = np.arange(curve.shape[1])
    for row in out:
        known = ~np.isnan(row)
        row[~known] = np.interp(ks[~known], ks[known], row[known])
    return out


def area(curves: np.ndarray) -> float:
    """Mean area under the curves (N, steps + 1) over x in [0, 1] (trapezoids)."""
    steps = curves.shape[1] - 1
    return float(((curves[:, :-1] + curves[:, 1:]) / (2 * steps)).sum(axis=1).mean())
