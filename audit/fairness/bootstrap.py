"""Bootstrap of the disparities, vectorized by counting.

Every disparity depends on the rows only through the counts of each (group, true
outcome, predicted outcome) cell. Rows that agree on every sensitive feature, the true
class and the predicted class form a stratum; a bootstrap resample (n rows drawn
uniformly with replacement) draws the strata's counts from Multinomial(n, size/n), so
drawing those counts directly gives exactly the distribution of the row bootstrap, at a
cost of (resamples x strata) rather than (resamples x rows). `resample_rows` turns one
draw back into row indices, on which fairlearn gives the same numbers (tests and the
benchmark check it). Each feature's cells are then a matrix product of the counts with
a 0/1 map from strata to cells.

The analyzer's intervals are score intervals (audit.fairness.intervals), which hold their
coverage where the bootstrap's did not (benchmarks/coverage.py); this module stays the
fast resampling engine for replicates of any disparity (and its cell arithmetic serves
the mitigation preview).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import sparse


CHUNK = 250  # resamples per block, so memory stays at CHUNK x strata


@dataclass(frozen=True)
class Strata:
    """`of_row`: each row's stratum; `first`: one row of each stratum; `size`: rows per stratum."""

    of_row: np.ndarray
    first: np.ndarray
    size: np.ndarray

    @classmethod
    def from_codes(cls, codes: Sequence[np.ndarray]) -> Strata:
        """Strata of the rows that agree on every integer code array in `codes`."""
        keys = np.stack([np.asarray(c, dtype=np.int64) for c in codes], axis=1)
        _, first, of_row, size = np.unique(keys, axis=0, return_index=True, return_inverse=True, return_counts=True)
        return cls(of_row=of_row.ravel(), first=first, size=size)

    def __len__(self) -> int:
        return len(self.size)


@dataclass(frozen=True)
class Outcome:
    """A 0/1 outcome over groups: `group` codes 0..n_groups-1 per row (-1: row left out)."""

    group: np.ndarray
    n_groups: int
    y_true: np.ndarray
    y_pred: np.ndarray


def cell_map(strata: Strata, outcome: Outcome):
    """Sparse (strata, n_groups * 4) 0/1 map: stratum -> cell (group, tn/fp/fn/tp)."""
    g = outcome.group[strata.first]
    cell = 2 * outcome.y_true[strata.first].astype(np.int64) + outcome.y_pred[strata.first].astype(np.int64)
    keep = np.flatnonzero(g >= 0)
    return sparse.csr_matrix((np.ones(len(keep)), (keep, g[keep] * 4 + cell[keep])),
                             shape=(len(strata), outcome.n_groups * 4))


def resample_counts(strata: Strata, resamples: int, seed: int):
    """Blocks of stratum counts (block, strata), one row per bootstrap resample, seeded."""
    rng = np.random.default_rng(seed)
    n = int(strata.size.sum())
    p = strata.size / n
    for start in range(0, resamples, CHUNK):
        yield rng.multinomial(n, p, size=min(CHUNK, resamples - start))


def resample_rows(strata: Strata, counts: np.ndarray, seed: int) -> np.ndarray:
    """Row indices of one resample with the stratum `counts`: each stratum's rows drawn uniformly
    with replacement, which makes the indices a plain row bootstrap sample."""
    rng = np.random.default_rng(seed)
    members = np.split(np.argsort(strata.of_row, kind="stable"), np.cumsum(strata.size)[:-1])
    return np.concatenate([rng.choice(m, size=int(c)) for m, c in zip(members, counts)]).astype(np.int64)


def cells(counts: np.ndarray, mapping) -> np.ndarray:
    """(resamples, groups, 4) counts of tn, fp, fn, tp per group."""
    out = np.asarray((mapping.T @ counts.T).T, dtype=np.float64)
    return out.reshape(len(counts), -1, 4)


def disparities_from_cells(c: np.ndarray) -> dict[str, np.ndarray]:
    """DISPARITIES per resample from (resamples, groups, 4) cell counts, with fairlearn's conventions:
    a group absent from a resample is left out; a rate with an empty denominator is 0 (as
    sklearn's normalized confusion matrix gives); a ratio of 0 to 0 is NaN."""
    tn, fp, fn, tp = np.moveaxis(c, -1, 0)
    n = tn + fp + fn + tp
    present = n > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        rates = {
            "selection_rate": (fp + tp) / n,
            "accuracy": (tp + tn) / n,
            "tpr": np.where(tp + fn > 0, tp / (tp + fn), 0.0),
            "fpr": np.where(fp + tn > 0, fp / (fp + tn), 0.0),
        }
        high = {k: np.max(np.where(present, v, -np.inf), axis=1) for k, v in rates.items()}
        low = {k: np.min(np.where(present, v, np.inf), axis=1) for k, v in rates.items()}
        diff = {k: high[k] - low[k] for k in rates}
        ratio = {k: low[k] / high[k] for k in rates}
    none = ~present.any(axis=1)
    out = {
        "demographic_parity_difference": diff["selection_rate"],
        "demographic_parity_ratio": ratio["selection_rate"],
        "equalized_odds_difference": np.where(diff["fpr"] > diff["tpr"], diff["fpr"], diff["tpr"]),
        "equalized_odds_ratio": np.where(ratio["fpr"] < ratio["tpr"], ratio["fpr"], ratio["tpr"]),
        "equal_opportunity_difference": diff["tpr"],
        "accuracy_difference": diff["accuracy"],
    }
    return {k: np.where(none, np.nan, v) for k, v in out.items()}


def bootstrap_disparities(strata: Strata, outcomes: Mapping[object, Outcome], resamples: int, seed: int
                          ) -> dict[object, dict[str, np.ndarray]]:
    """Replicates (resamples,) of every disparity for each outcome, all from the same resamples.
    Each outcome's rows must be told apart by `strata` (its groups and outcomes are in the codes)."""
    maps = {key: cell_map(strata, outcome) for key, outcome in outcomes.items()}
    blocks: dict[object, list[dict[str, np.ndarray]]] = {key: [] for key in outcomes}
    for counts in resample_counts(strata, resamples, seed):
        for key, mapping in maps.items():
            blocks[key].append(disparities_from_cells(cells(counts, mapping)))
    return {key: {name: np.concatenate([b[name] for b in parts]) for name in parts[0]}
            for key, parts in blocks.items()}
