"""The slice counts, added up over chunks of rows, and the result built from them."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from audit.analyzers.slices.columns import FIRST_ROWS, Coder, raw_columns
from audit.analyzers.slices.figures import gap_chart
from audit.analyzers.slices.summary import Slice, SliceSummary
from audit.core.analyzer import Tally
from audit.core.groups import SensitiveValues
from audit.core.result import Result
from audit.methods.slices import Outcomes, SliceLattice, discover

if TYPE_CHECKING:
    from audit.analyzers.slices.analyzer import Slices

SLICES_TABLE = "slices"
ERROR, SELECTION = "error_rate", "selection_rate"  # a gap either way is a difference; for every other metric higher is worse


class SlicesTally(Tally):
    """Per slice of up to `depth` candidate columns, its rows' outcomes counted (audit.methods.slices.SliceLattice).
    The codes are decided once (columns.Coder): until the tally has seen FIRST_ROWS rows (or the data end) it
    holds their candidate columns, then codes them and every later chunk as it comes."""

    def __init__(self, analyzer: Slices, model, values: SensitiveValues):
        self.analyzer, self.values = analyzer, values
        self.positive = 1 if len(model.classes) == 2 else None
        self.labels = model.labels
        self.pending: list[tuple[pd.DataFrame, Outcomes]] = []
        self.coder: Coder | None = None
        self.lattice: SliceLattice | None = None
        self.rows = 0

    def add(self, chunk, proba, start):
        outcomes = Outcomes.of(self.labels(chunk), proba, self.positive)
        raw = raw_columns(chunk)
        self.rows += len(chunk)
        if self.coder is not None:
            self.lattice.add(self.coder.codes(raw), outcomes)
            return
        self.pending.append((raw, outcomes))
        if self.rows >= FIRST_ROWS:
            self._begin()

    def _begin(self) -> None:
        """Decide the codes from the rows held, and count them."""
        held = [raw for raw, _ in self.pending]
        first = pd.concat(held, ignore_index=True).iloc[:FIRST_ROWS] if held else pd.DataFrame()
        self.coder = Coder.of(first, self.values, max_values=self.analyzer.max_values)
        self.lattice = SliceLattice(self.coder.cardinalities, depth=self.analyzer.depth)
        for raw, outcomes in self.pending:
            self.lattice.add(self.coder.codes(raw), outcomes)
        self.pending = []

    def result(self, sample) -> Result:
        if self.coder is None:
            self._begin()
        analyzer = self.analyzer
        found = discover(self.lattice, alpha=analyzer.alpha, min_rows=analyzer.min_rows)
        summary = self.summary(found)
        table = self.table(found)
        metrics = {"slices.slices_tested": float(summary.slices_tested), "slices.tests": float(summary.tests),
                   "slices.slices_found": float(len(summary.found))}
        intervals = {}
        if summary.detectable_gap is not None:
            metrics["slices.detectable_gap"] = summary.detectable_gap
        worst = summary.worst
        metrics["slices.worst_gap"] = abs(worst.gap) if worst else 0.0
        if worst:
            bounds = sorted((abs(worst.lower), abs(worst.upper)))
            metrics["slices.worst_gap_lower"] = bounds[0] if worst.lower * worst.upper > 0 else 0.0
            intervals["slices.worst_gap"] = (metrics["slices.worst_gap_lower"], bounds[1])
        figures = (gap_chart(summary),) if summary.found else ()
        return Result(analyzer=analyzer.name, metrics=metrics, intervals=intervals,
                      tables={SLICES_TABLE: table} if len(table) else {}, figures=figures,
                      config=analyzer.config(), summary=summary,
                      drivers={"slices.worst_gap": worst.words} if worst else {},
                      notes={SLICES_TABLE: self.note(summary)} if len(table) else {},
                      details={"columns": {c.name: list(c.values) for c in self.coder.columns},
                               "constant_columns": list(self.coder.dropped)})

    def summary(self, found) -> SliceSummary:
        analyzer, table = self.analyzer, ranked(found.table)
        shown = one_per_slice(table[table["shown"].to_numpy(dtype=bool)]).head(analyzer.top)
        return SliceSummary(rows=self.rows, columns=tuple(c.name for c in self.coder.columns), depth=analyzer.depth,
                            min_rows=analyzer.min_rows, alpha=analyzer.alpha, slices_tested=found.slices,
                            tests=found.tests, found=tuple(self._slice(row) for row in shown.itertuples()),
                            discovered=len(table), detectable_gap=found.detectable_gap)

    def _slice(self, row) -> Slice:
        return Slice(words=self.coder.words(row.slice), depth=len(row.slice), metric=row.metric.replace("_", " "),
                     rows=int(row.rows), share=row.rows / max(self.rows, 1), rate=float(row.rate),
                     rest_rate=float(row.rest_rate), gap=float(row.gap), lower=float(row.lower),
                     upper=float(row.upper), p_value=float(row.p_value))

    def table(self, found) -> pd.DataFrame:
        """The discovered slices where the model does worse, in the order `ranked` gives."""
        table = ranked(found.table)
        return pd.DataFrame({
            "slice": [self.coder.words(s) for s in table["slice"]],
            "metric": table["metric"].str.replace("_", " ").to_numpy(),
            "rows": table["rows"].astype(np.int64).to_numpy(),
            "rate": table["rate"].to_numpy(), "rest_rate": table["rest_rate"].to_numpy(),
            "gap": table["gap"].to_numpy(), "low": table["lower"].to_numpy(), "high": table["upper"].to_numpy(),
            "p_value": table["p_value"].to_numpy(), "shown": table["shown"].to_numpy(dtype=bool),
        })

    @staticmethod
    def note(summary: SliceSummary) -> str:
        return (f"{summary.slices_tested:,} slices of up to {summary.depth} of the columns "
                f"{', '.join(summary.columns)} with at least {summary.min_rows} rows tested against the rest of the "
                f"rows, {summary.tests:,} tests in all. Listed: the discoveries at a false discovery rate of "
                f"{summary.alpha:.0%} where the slice does worse (a selection rate: differs), their intervals "
                "adjusted for the search. A slice is shown (shown = True) only where it is worse than every slice "
                "it refines beyond its interval.")


def ranked(table: pd.DataFrame) -> pd.DataFrame:
    """The discovered rows where the slice does worse than the rest (a higher error rate, false positive or false
    negative rate or calibration error; a selection rate either way), errors first, then shown first, then by
    the bound of the gap's interval nearest 0, largest first."""
    selection = (table["metric"] == SELECTION).to_numpy()
    table = table[table["discovered"].to_numpy() & (selection | (table["gap"] > 0).to_numpy())]
    nearest = np.minimum(table["lower"].abs(), table["upper"].abs()).to_numpy()
    order = np.lexsort((-nearest, ~table["shown"].to_numpy(dtype=bool), (table["metric"] == SELECTION).to_numpy()))
    return table.iloc[order]


def one_per_slice(table: pd.DataFrame) -> pd.DataFrame:
    """Each slice once, where it first comes in `table`, by its error rate where that was discovered (the
    false positive or false negative rate of a slice that errs more mostly tells the same story)."""
    keys = table["slice"].map(tuple)
    lead = (table["metric"] == ERROR).groupby(keys.to_numpy()).transform("any").to_numpy()
    kept = table[~lead | (table["metric"] == ERROR).to_numpy()]
    return kept[~kept["slice"].map(tuple).duplicated().to_numpy()]
