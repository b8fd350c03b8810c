"""Rows that are exact copies of other rows (the same inputs and label), counted in bounded memory.

Each row is hashed to 64 bits. Up to EXACT_ROWS distinct hashes are kept, so the count is exact below that
(a collision of two different rows among ten million has a chance of about 3 in a million); past it only the
hashes below a falling bound are kept (distinct sampling: each distinct row is kept with probability 2**-level
whatever its copies), and the distinct rows are estimated as the kept hashes times 2**level.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

EXACT_ROWS = 1 << 20  # distinct hashes kept (8 MiB); the count is exact while the data hold no more
_MIX = np.uint64(0x9E3779B97F4A7C15)


def row_hashes(inputs, labels: np.ndarray) -> np.ndarray | None:
    """One 64-bit hash per row of `inputs` and `labels`; None when the rows carry no inputs (predictions alone).
    Numbers hash as float64, so that a column read as integers in one chunk and as floats in another agrees."""
    if isinstance(inputs, pd.DataFrame):
        if not len(inputs.columns):
            return None
        columns = {c: _hashable(inputs[c]) for c in inputs.columns}
        hashed = pd.util.hash_pandas_object(pd.DataFrame(columns), index=False).to_numpy()
    elif inputs.dtype == object:
        hashed = pd.util.hash_array(inputs)
    else:
        rows = np.ascontiguousarray(inputs).reshape(len(inputs), -1)
        hashed = np.array([int.from_bytes(hashlib.blake2b(r.tobytes(), digest_size=8).digest(), "little")
                           for r in rows], dtype=np.uint64)
    with np.errstate(over="ignore"):
        return pd.util.hash_array(hashed ^ (labels.astype(np.uint64) * _MIX))


def _hashable(column: pd.Series) -> pd.Series:
    kind = column.dtype.kind
    return column.astype(np.float64) if kind in "biuf" else column if kind == "O" else column.astype(str)


class DuplicateCount:
    """The rows seen and an estimate of how many are copies of an earlier row."""

    def __init__(self):
        self.rows, self.level = 0, 0
        self.kept = np.empty(0, dtype=np.uint64)  # distinct hashes below the bound, sorted
        self.pending: list[np.ndarray] = []
        self.counted = True  # False once a chunk came without inputs

    def add(self, inputs, labels: np.ndarray) -> None:
        hashed = row_hashes(inputs, labels)
        if hashed is None:
            self.counted = False
            return
        self.rows += len(hashed)
        self.pending.append(self._below(hashed))
        if sum(map(len, self.pending)) >= max(len(self.kept), EXACT_ROWS // 4):
            self._merge()

    @property
    def exact(self) -> bool:
        self._merge()
        return self.level == 0

    @property
    def duplicates(self) -> int | None:
        """Rows that copy an earlier row (estimated past EXACT_ROWS distinct rows); None when rows had no inputs."""
        if not self.counted:
            return None
        self._merge()
        return max(self.rows - len(self.kept) * 2 ** self.level, 0)

    def _below(self, hashed: np.ndarray) -> np.ndarray:
        return hashed if self.level == 0 else hashed[hashed >> np.uint64(64 - self.level) == 0]

    def _merge(self) -> None:
        if not self.pending:
            return
        self.kept = np.unique(np.concatenate([self.kept, *self.pending]))
        self.pending = []
        while len(self.kept) > EXACT_ROWS:
            self.level += 1
            self.kept = self._below(self.kept)
