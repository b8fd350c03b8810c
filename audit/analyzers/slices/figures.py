"""The figure of the slices section: the shown slices' gaps with their intervals."""

from __future__ import annotations

import numpy as np

from audit.analyzers.slices.summary import SliceSummary
from audit.plots import new_figure, to_figure, wrapped


def gap_chart(summary: SliceSummary):
    """One row per shown slice, worst on top: its gap to the rest of the rows with the interval adjusted for the
    search, and the gap the search could detect at 80% power (dashed)."""
    found = summary.found
    fig, ax = new_figure(6.4, 1.0 + 0.45 * len(found))
    y = np.arange(len(found))
    gaps = np.array([s.gap for s in found]) * 100
    err = np.array([[s.gap - s.lower for s in found], [s.upper - s.gap for s in found]]).clip(min=0) * 100
    ax.errorbar(gaps, y, xerr=err, fmt="o", color="#e45756", capsize=3, markersize=4)
    ax.set_yticks(y, [wrapped(f"{s.words} ({s.metric})", 40) for s in found], fontsize=7)
    ax.invert_yaxis()
    ax.axvline(0, color="#888", linewidth=0.8)
    if summary.detectable_gap is not None:
        for side in (-1, 1):
            ax.axvline(side * summary.detectable_gap * 100, color="#888", linewidth=0.8, linestyle="--")
    ax.set_xlabel("slice minus rest of the rows (percentage points)")
    detectable = (f" Dashed: the gap the search detects with 80% power in a slice of {summary.min_rows} rows."
                  if summary.detectable_gap is not None else "")
    return to_figure(fig, title="Slices that differ from the rest", caption=(
        f"The slices found among the {summary.slices_tested:,} tested (of up to {summary.depth} columns, at least "
        f"{summary.min_rows} rows each), worst first: how far the slice's rate lies from the rest of the rows'. "
        f"Bars are intervals adjusted for the whole search (false discovery rate {summary.alpha:.0%}); a child "
        f"slice appears only where it is worse than its parents beyond its interval.{detectable}"))
