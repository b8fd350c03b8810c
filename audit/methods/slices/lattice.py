"""Additive counts of every conjunction of up to `depth` distinct features: the tallies slice discovery reads.

Each row of a chunk has a code per feature (0..cardinality-1, or -1 where missing: such a row is in no slice of
that feature). For each set of features the lattice keeps a table over the product of their codes; each cell
holds the counts of the rows of that slice by outcome and two sums of their calibration residual. Memory grows
with the products of the cardinalities, never with rows, and every count is an integer, so the tables are the
same, to the last bit, however the rows are chunked, merged or ordered.

Cell layout (last axis): the rows of each outcome kind (binary: label positive x predicted positive, kinds
2 * positive + predicted; multiclass: correct, wrong), then the sums of the residual d = confidence - correct
and of d**2, each in units of 2**-RESOLUTION_BITS (rounded per row).
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations

import numpy as np

from audit._util.errors import AuditInputError
from audit.methods.slices.outcomes import Outcomes

RESOLUTION_BITS = 20  # d in [-1, 1] per row in 2**-20 units: 10**7 rows sum to < 2**44, exact in float64 bincount
MAX_DEPTH = 3


class SliceLattice:
    """Counts of every slice: a conjunction of one code of each of up to `depth` distinct features."""

    def __init__(self, cardinalities: Sequence[int], depth: int = 2):
        self.cardinalities = tuple(int(c) for c in cardinalities)
        if not 1 <= depth <= MAX_DEPTH:
            raise AuditInputError(f"slice depth must be 1 to {MAX_DEPTH}, not {depth}")
        if any(c < 1 for c in self.cardinalities):
            raise AuditInputError("every slice feature needs at least one code")
        self.depth = depth
        self.feature_sets = tuple(s for k in range(1, depth + 1)
                                  for s in combinations(range(len(self.cardinalities)), k))
        self.binary: bool | None = None
        self.total: np.ndarray | None = None
        self._tables: dict[tuple[int, ...], np.ndarray] = {}

    @property
    def kinds(self) -> int:
        return 4 if self.binary else 2

    @property
    def rows(self) -> int:
        return 0 if self.total is None else int(self.total[:self.kinds].sum())

    def table(self, features: tuple[int, ...]) -> np.ndarray:
        """The counts of the slices of `features` (ascending): shape (*their cardinalities, kinds + 2)."""
        return self._tables[features]

    def add(self, codes, outcomes: Outcomes) -> None:
        """Add a chunk: `codes` (n, features) integer codes of its rows, `outcomes` their outcomes."""
        codes = np.asarray(codes)
        if codes.ndim != 2 or codes.shape[1] != len(self.cardinalities) or len(codes) != len(outcomes):
            raise AuditInputError(f"slice codes must be (rows, {len(self.cardinalities)}), one row per outcome; "
                                  f"got {codes.shape} for {len(outcomes)} outcomes")
        if np.any(codes >= np.asarray(self.cardinalities)) or np.any(codes < -1):
            raise AuditInputError("a slice code is outside 0..cardinality-1 (or -1 for missing)")
        self._start(outcomes.binary)
        kind = self._kind(outcomes)
        scale = float(2 ** RESOLUTION_BITS)
        residual = outcomes.confidence - (~np.asarray(outcomes.error, dtype=bool))
        sums = np.rint(np.stack([residual * scale, residual * residual * scale], axis=1))
        self.total += self._cells(np.zeros(len(kind), dtype=np.int64), 1, kind, sums)[0]
        for features in self.feature_sets:
            self._tables[features] += self._tally(codes[:, features], features, kind, sums)

    def merge(self, other: SliceLattice) -> None:
        """Add another lattice's counts (chunks counted apart: a worker, a Ray task)."""
        if (other.cardinalities, other.depth) != (self.cardinalities, self.depth):
            raise AuditInputError("only lattices over the same features and depth can be merged")
        if other.total is None:
            return
        self._start(other.binary)
        self.total += other.total
        for features, table in other._tables.items():
            self._tables[features] += table

    def _start(self, binary: bool) -> None:
        if self.binary is None:
            self.binary = binary
            self.total = np.zeros(self.kinds + 2, dtype=np.int64)
            self._tables = {s: np.zeros(tuple(self.cardinalities[f] for f in s) + (self.kinds + 2,), dtype=np.int64)
                            for s in self.feature_sets}
        elif binary != self.binary:
            raise AuditInputError("slice outcomes mix a binary and a multiclass task")

    def _kind(self, outcomes: Outcomes) -> np.ndarray:
        if self.binary:
            return 2 * np.asarray(outcomes.positive, dtype=np.int64) + np.asarray(outcomes.predicted, dtype=np.int64)
        return np.asarray(outcomes.error, dtype=np.int64)

    def _tally(self, codes: np.ndarray, features: tuple[int, ...], kind, sums) -> np.ndarray:
        shape = tuple(self.cardinalities[f] for f in features)
        inside = np.all(codes >= 0, axis=1)
        cell = np.ravel_multi_index(tuple(codes[inside].T), shape) if inside.any() else np.zeros(0, dtype=np.int64)
        return self._cells(cell, int(np.prod(shape)), kind[inside], sums[inside]).reshape(shape + (-1,))

    def _cells(self, cell: np.ndarray, cells: int, kind: np.ndarray, sums: np.ndarray) -> np.ndarray:
        k = self.kinds
        counts = np.bincount(cell * k + kind, minlength=cells * k).reshape(cells, k)
        residuals = [np.rint(np.bincount(cell, weights=sums[:, j], minlength=cells)) for j in range(2)]
        return np.column_stack([counts] + residuals).astype(np.int64)
