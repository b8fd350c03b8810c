"""What explanation quality judges, computed once by the analyzer: every number its findings state."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SanityOutcome:
    """One method's model-randomization check: its median rank correlation over the cascade, and whether it
    stayed below the threshold (the method depends on the model)."""

    method: str
    correlation: float
    passed: bool


@dataclass(frozen=True)
class ExplanationSummary:
    """`sanity` holds the methods whose check ran, in method order; `agreement` is None with fewer than two
    methods."""

    samples: int
    sanity_threshold: float
    sanity: tuple[SanityOutcome, ...] = ()
    agreement: float | None = None
