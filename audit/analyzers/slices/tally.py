"""The slice counts, added up over chunks of rows, and the result built from them."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from audit.analyzers.slices.columns import FIRST_ROWS, Coder, candidates, raw_columns
from audit.analyzers.slices.figures import gap_chart
from audit.analyzers.slices.summary import Slice, SliceSummary
from audit.core.analyzer import Tally
from audit.core.groups import SensitiveValues
from audit.core.result import Result
from audit.methods.slices import Discovery, Outcomes, SliceLattice, discover

if TYPE_CHECKING:
    from audit.analyzers.slices.analyzer import Slices

SLICES_TABLE = "slices"
ERROR, SELECTION, CALIBRATION = "error_rate", "selection_rate", "calibration_gap"


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
        self.beyond: tuple[str, ...] = ()  # candidates past raw_columns' limit, never held
        self.lattice: SliceLattice | None = None
        self.rows = 0

    def add(self, chunk, proba, start):
        outcomes = Outcomes.of(self.labels(chunk), proba, self.positive)
        raw = raw_columns(chunk, self.analyzer.max_columns)
        if not self.rows:
            self.beyond = tuple(c for c in candidates(chunk) if c not in raw.columns)
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
        self.coder = Coder.of(first, self.values, max_values=self.analyzer.max_values,
                              max_columns=self.analyzer.max_columns, beyond=self.beyond)
        self.lattice = SliceLattice(self.coder.cardinalities, depth=self.analyzer.depth)
        for raw, outcomes in self.pending:
            self.lattice.add(self.coder.codes(raw), outcomes)
        self.pending = []

    def result(self, sample) -> Result:
        if self.coder is None:
            self._begin()
        analyzer, found = self.analyzer, None
        if self.coder.columns:
            found = discover(self.lattice, alpha=analyzer.alpha, min_rows=analyzer.min_rows)
        summary = self.summary(found)
        table = self.table(found) if found is not None else pd.DataFrame()
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
        left_out = self.coder.left_out
        warnings = (f"{len(left_out)} column(s) not searched, beyond slices.max_columns = {analyzer.max_columns}: "
                    f"{', '.join(left_out)}",) if left_out else ()
        return Result(analyzer=analyzer.name, metrics=metrics, intervals=intervals,
                      tables={SLICES_TABLE: table} if len(table) else {}, figures=figures,
                      config=analyzer.config(), summary=summary, warnings=warnings,
                      drivers={"slices.worst_gap": worst.words} if worst else {},
                      notes={SLICES_TABLE: self.note(summary)} if len(table) else {},
                      details={"columns": {c.name: list(c.values) for c in self.coder.columns},
                               "constant_columns": list(self.coder.dropped)})

    def summary(self, found: Discovery | None) -> SliceSummary:
        """The search's summary; `found` None: no column to cut (nothing tested)."""
        analyzer = self.analyzer
        shown = () if found is None else one_per_slice(ranked(shown_rows(found.table))).head(analyzer.top).itertuples()
        tests = found.tests if found is not None else 0
        gap = float(found.detectable_gap) if tests else np.nan
        return SliceSummary(rows=self.rows, columns=tuple(c.name for c in self.coder.columns), depth=analyzer.depth,
                            min_rows=analyzer.min_rows, alpha=analyzer.alpha,
                            slices_tested=found.slices if found is not None else 0, tests=tests,
                            found=tuple(self._slice(row) for row in shown),
                            discovered=found.discoveries if found is not None else 0,
                            detectable_gap=gap if np.isfinite(gap) else None)

    def _slice(self, row) -> Slice:
        return Slice(words=self.coder.words(row.slice), depth=int(row.depth), metric=row.metric.replace("_", " "),
                     rows=int(row.rows), share=row.rows / max(self.rows, 1), rate=float(row.rate),
                     rest_rate=float(row.rest_rate), gap=float(row.gap), lower=float(row.lower),
                     upper=float(row.upper), p_value=float(row.p_value), detectable=float(row.detectable))

    def table(self, found: Discovery) -> pd.DataFrame:
        """The discoveries: the shown slices in the order of the summary's, then the others (not worse than the
        rest, or not worse than a slice they refine) by the near end of their interval."""
        shown = shown_rows(found.table)
        discovered = found.table[found.table["discovered"].to_numpy(dtype=bool)]
        table = pd.concat([ranked(shown), ranked(discovered.drop(index=shown.index))])
        return pd.DataFrame({
            "slice": [self.coder.words(s) for s in table["slice"]],
            "metric": table["metric"].str.replace("_", " ").to_numpy(),
            "rows": table["rows"].astype(np.int64).to_numpy(), "count": table["count"].astype(np.int64).to_numpy(),
            "rate": table["rate"].to_numpy(), "rest_rate": table["rest_rate"].to_numpy(),
            "gap": table["gap"].to_numpy(), "low": table["lower"].to_numpy(), "high": table["upper"].to_numpy(),
            "p_value": table["p_value"].to_numpy(), "detectable": table["detectable"].to_numpy(),
            "shown": table.index.isin(shown.index),
        })

    @staticmethod
    def note(summary: SliceSummary) -> str:
        return (f"{summary.slices_tested:,} slices of up to {summary.depth} of the columns "
                f"{', '.join(summary.columns)} with at least {summary.min_rows} rows tested against the rest of the "
                f"rows, {summary.tests:,} tests in all. Listed: the discoveries at a false discovery rate of "
                f"{summary.alpha:.0%} where the slice does worse (a selection rate: differs), their intervals "
                "adjusted for the search. A slice is shown (shown = True) only where it is worse than every slice "
                "it refines beyond its interval.")


def shown_rows(table: pd.DataFrame) -> pd.DataFrame:
    """The rows the search shows, less a calibration gap where the slice is the better calibrated: its mean
    residual nearer 0 than the rest's (the search takes a calibration gap either way)."""
    calibration = (table["metric"] == CALIBRATION).to_numpy()
    better = calibration & (table["rate"].abs() <= table["rest_rate"].abs()).to_numpy()
    return table[table["shown"].to_numpy(dtype=bool) & ~better]


def ranked(table: pd.DataFrame) -> pd.DataFrame:
    """`table`'s rows, the rates of errors (error, false positive and false negative rate, calibration gap) before
    selection rates, each by the near end of the gap's interval, farthest from 0 first."""
    margin = np.minimum(table["lower"].abs(), table["upper"].abs()).to_numpy(dtype=float)
    return table.iloc[np.lexsort((-margin, (table["metric"] == SELECTION).to_numpy()))]


def one_per_slice(table: pd.DataFrame) -> pd.DataFrame:
    """Each slice once, where it first comes in `table`, by its error rate where that is in `table` (the false
    positive or false negative rate of a slice that errs more mostly tells the same story)."""
    keys = table["slice"].map(tuple).to_numpy()
    error = (table["metric"] == ERROR).to_numpy()
    lead = pd.Series(error).groupby(keys).transform("any").to_numpy() if len(table) else error
    kept = table[~lead | error]
    return kept[~kept["slice"].map(tuple).duplicated().to_numpy()]
