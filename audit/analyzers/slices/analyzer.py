"""Slices: the groups of rows nobody named where the model errs more (or selects, or calibrates differently).

The search crosses up to `depth` candidate columns (audit.analyzers.slices.columns: the sensitive columns, the
table's other inputs or a text's length and identity terms, and the data's descriptive attributes) and tests
every slice of at least `min_rows` rows against the rest of the rows in error rate, false positive and false
negative rate, selection rate and calibration error (audit.methods.slices: counts, tests, false discovery control
at `alpha` over every slice and metric tested, intervals adjusted for the search, and the gap the search could
detect at 80% power). A slice is shown only where it is worse than the slices it refines beyond its interval.
The counts add up over chunks (tally.py), so a streamed run finds the slices an in-memory run finds.
"""

from __future__ import annotations

from dataclasses import dataclass

from audit._util.errors import AuditInputError
from audit.analyzers.slices.findings import slice_findings
from audit.analyzers.slices.tally import SlicesTally
from audit.core.analyzer import Analyzer, Cost, Probed, UNPROBED, register_analyzer
from audit.core.groups import SensitiveValues
from audit.core.result import MetricSpec, Result
from audit.methods.slices.discovery import DEFAULT_MIN_ROWS

MAX_DEPTH = 3


@register_analyzer
@dataclass(frozen=True, kw_only=True)
class Slices(Analyzer):
    """Which slices of the data, named by their column values, does the model treat worse than the rest?"""

    depth: int = 2  # columns crossed in a slice, at most MAX_DEPTH
    min_rows: int = DEFAULT_MIN_ROWS
    alpha: float = 0.05  # false discovery rate over every slice and metric tested
    max_values: int = 12  # most frequent values kept of a categorical column
    max_columns: int = 32  # columns searched, sensitive ones first (the lattice grows with their pairs)
    top: int = 10  # slices shown in the summary, figure and findings

    name = "slices"
    concern = "Fairness"
    title = "Slices"
    description = ("slice discovery: conjunctions of column values where the model errs more than on the rest, "
                   "with false discovery control, adjusted intervals and the detectable gap")
    metric_prefix = "slices"
    needs_model = False
    headline = ("slices.worst_gap",)
    metrics = {
        "slices.slices_tested": MetricSpec("slices of at least min_rows rows tested", "higher"),
        "slices.tests": MetricSpec("slice and metric pairs tested (what the false discovery rate is over)", "higher"),
        "slices.slices_found": MetricSpec("slices shown: discovered and worse than the slices they refine", "lower"),
        "slices.worst_gap": MetricSpec(
            "largest gap, slice minus the rest of the rows, of a shown slice (0 when none; unsigned; interval "
            "adjusted for the search); the report names the slice", "lower", interval=True),
        "slices.worst_gap_lower": MetricSpec("the bound of the worst slice's gap interval nearest 0", "lower"),
        "slices.detectable_gap": MetricSpec(
            "smallest gap the search detects with 80% power in a slice of min_rows rows", "lower"),
    }

    def supports(self, model, data) -> bool:
        described = len(data.sensitive.columns) + len(data.attributes.columns)
        return described > 0 or data.modality in ("tabular", "text")

    def findings(self, result, thresholds):
        return slice_findings(result.summary, thresholds) if result.summary is not None else ()

    def run(self, model, data, *, seed: int = 0) -> Result:
        tally = self.tally(model, SensitiveValues.of(data.sensitive), seed=seed)
        tally.add(data, model.predict_proba(data), 0)
        return tally.result(data)

    def cost(self, model, rows: int, *, probed: Probed = UNPROBED) -> Cost:
        """No model passes: counting every row into the lattice (about 20 us a row at depth 2 on adult, each
        deeper level about four times that) and the tests."""
        return Cost(seconds=0.1 + 2e-5 * rows * 4 ** (self.depth - 2))

    def tally(self, model, values: SensitiveValues, *, seed: int) -> SlicesTally:
        return SlicesTally(self, model, values)

    def __post_init__(self) -> None:
        if not 1 <= self.depth <= MAX_DEPTH:
            raise AuditInputError(f"slices: depth must be 1 to {MAX_DEPTH}, not {self.depth}")
        if self.min_rows < 1:
            raise AuditInputError(f"slices: min_rows must be at least 1, not {self.min_rows}")
        if not 0 < self.alpha < 1:
            raise AuditInputError(f"slices: alpha must lie between 0 and 1, not {self.alpha}")
        if self.max_values < 2:
            raise AuditInputError(f"slices: max_values must be at least 2, not {self.max_values}")
        if self.max_columns < 1:
            raise AuditInputError(f"slices: max_columns must be at least 1, not {self.max_columns}")
        if self.top < 1:
            raise AuditInputError(f"slices: top must be at least 1, not {self.top}")
