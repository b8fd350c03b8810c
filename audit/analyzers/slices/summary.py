"""What the slice search judges, computed once by the tally: every number its findings, table and figure state."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Slice:
    """One discovered slice shown to the reader (deduplicated): its words, the metric it differs in, its rows
    and the share of all rows, its rate against the rest's and the gap's interval (adjusted for the search)."""

    words: str
    depth: int
    metric: str  # e.g. "error rate"
    rows: int
    share: float
    rate: float
    rest_rate: float
    gap: float
    lower: float
    upper: float
    p_value: float
    detectable: float  # the smallest gap this slice detects at 80% power

    @property
    def sentence(self) -> str:
        """"age < 25 and workclass = Self-emp-not-inc: error rate 41% vs 17% [15, 33] points, 1.9% of rows"."""
        share = f"{self.share:.1%}" if self.share >= 0.001 else f"{self.share * 100:.2g}%"
        return (f"{self.words}: {self.metric} {self.rate:.0%} vs {self.rest_rate:.0%} "
                f"[{self.lower * 100:+.0f}, {self.upper * 100:+.0f}] points, {share} of rows")


@dataclass(frozen=True)
class SliceSummary:
    """The search: the columns it cut, the slices and tests it made, what it found (worst first) and the gap it
    could have detected at 80% power in a slice of `min_rows` rows (None when it tested nothing)."""

    rows: int
    columns: tuple[str, ...]
    depth: int
    min_rows: int
    alpha: float
    slices_tested: int
    tests: int
    found: tuple[Slice, ...]
    discovered: int  # slice-metric pairs discovered before deduplication
    detectable_gap: float | None

    @property
    def worst(self) -> Slice | None:
        return self.found[0] if self.found else None
