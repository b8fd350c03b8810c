"""A seeded uniform sample of rows drawn while the rows stream past, the same whatever the chunk size.

Each row gets a pseudo-random key computed from the seed and its position in the data alone
(splitmix64, a counter-based generator), and the sample is the `size` rows with the smallest
keys: a uniform sample without replacement (bottom-k sampling). Since a row's key does not
depend on which chunk carries it, neither does the sample; it is returned in data order.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

import numpy as np

T = TypeVar("T")
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def row_keys(start: int, n: int, seed: int) -> np.ndarray:
    """splitmix64 of the row positions start .. start + n - 1, offset by the seed: one uint64 per row."""
    with np.errstate(over="ignore"):
        z = (np.arange(start, start + n, dtype=np.uint64) + np.uint64(1)) * _GOLDEN + np.uint64(seed) * np.uint64(
            0xD1B54A32D192ED03)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


class Reservoir(Generic[T]):
    """The `size` rows of smallest key among those `add`ed. Rows are held in chunks of any type that
    `take(chunk, positions)` and `join(chunks)` handle (a `Dataset`, a DataFrame)."""

    def __init__(self, size: int, seed: int, take: Callable[[T, np.ndarray], T], join: Callable[[list[T]], T]):
        self.size, self.seed, self.take, self.join = size, seed, take, join
        self.keys = np.empty(0, dtype=np.uint64)
        self.rows = np.empty(0, dtype=np.int64)
        self.held: T | None = None

    def add(self, chunk: T, start: int, n: int) -> None:
        if self.size <= 0 or n == 0:
            return
        keys = row_keys(start, n, self.seed)
        if len(self.keys) >= self.size:  # only rows that beat the largest key held can enter
            chosen = np.flatnonzero(keys < self.keys.max())
            if not len(chosen):
                return
        else:
            chosen = np.arange(n)
        keys = np.concatenate([self.keys, keys[chosen]])
        rows = np.concatenate([self.rows, start + chosen])
        held = self.take(chunk, chosen) if self.held is None else self.join([self.held, self.take(chunk, chosen)])
        if len(keys) > self.size:
            keep = np.sort(np.argsort(keys, kind="stable")[: self.size])
            keys, rows, held = keys[keep], rows[keep], self.take(held, keep)
        self.keys, self.rows, self.held = keys, rows, held

    def sample(self) -> T | None:
        """The rows held, in the order of the data; None when none were added."""
        if self.held is None:
            return None
        return self.take(self.held, np.argsort(self.rows, kind="stable"))
