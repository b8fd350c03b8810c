"""`compare()`: a baseline and a candidate model on the same data, metric by metric."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from audit.analyzers.base import Analyzer
from audit.data.dataset import Dataset
from audit.errors import AuditInputError
from audit.model import Model
from audit.policy import Policy, Verdict, find_metric_spec
from audit.runner import SCHEMA, AuditRun, run


@dataclass(frozen=True)
class Comparison:
    baseline: AuditRun
    candidate: AuditRun
    verdict: Verdict

    def table(self) -> pd.DataFrame:
        """One row per metric of either run: both values, the change, and whether it is better."""
        base, cand = self.baseline.metrics, self.candidate.metrics
        rows = []
        for metric in dict.fromkeys([*base, *cand]):
            b, c = base.get(metric), cand.get(metric)
            delta = c - b if b is not None and c is not None else None
            spec = find_metric_spec(metric)
            if delta is None or spec is None or delta == 0:
                better = None
            else:
                better = (delta > 0) == (spec.better == "higher")
            rows.append({"metric": metric, "baseline": b, "candidate": c, "change": delta, "improved": better})
        return pd.DataFrame(rows, columns=["metric", "baseline", "candidate", "change", "improved"])

    def to_dict(self) -> dict:
        table = self.table().astype(object).where(self.table().notna(), None)
        return {
            "schema": SCHEMA.replace("report", "compare"),
            "baseline": self.baseline.to_dict(),
            "candidate": self.candidate.to_dict(),
            "changes": table.to_dict(orient="records"),
            "verdict": self.verdict.to_dict(),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, allow_nan=False)

    def save_json(self, path: str | Path) -> Path:
        from audit.report.files import write_text_atomic

        return write_text_atomic(path, self.to_json())

    def save_html(self, path: str | Path) -> Path:
        from audit.report.files import write_text_atomic
        from audit.report.html import render_comparison

        return write_text_atomic(path, render_comparison(self))

    def _repr_html_(self) -> str:
        from audit.report.html import render_comparison

        return render_comparison(self, standalone=False)


def compare(
    baseline: Model,
    candidate: Model,
    data: Dataset,
    analyzers: Sequence[str | Analyzer] | None = None,
    *,
    seed: int = 0,
    policy: Policy | None = None,
    samples: int | None = None,
    options: dict[str, dict] | None = None,
    command: str | None = None,
) -> Comparison:
    """Audit both models on `data` with the same analyzers and seed; gate the candidate against the baseline."""
    if baseline.modality != candidate.modality:
        raise AuditInputError(f"cannot compare a {baseline.modality} model with a {candidate.modality} model")
    kwargs = dict(seed=seed, samples=samples, options=options, command=command)
    base_run = run(baseline, data, analyzers, **kwargs)
    cand_run = run(candidate, data, analyzers, **kwargs)
    verdict = (policy or Policy()).evaluate(cand_run, baseline=base_run)
    return Comparison(base_run, dataclasses.replace(cand_run, verdict=verdict), verdict)
