"""`compare()`: a baseline and a candidate model on the same data, metric by metric."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from audit.core.analyzer import Analyzer

from audit.core.result import Result
from audit.core.dataset import Dataset
from audit.engine import Engine, running_on
from audit._util.errors import AuditInputError
from audit.core.model import Model
from audit.policy.gates import Policy, Verdict, find_metric_spec
from audit.executor.document import Document
from audit.executor.runner import SCHEMA, AuditRun, run


@dataclass(frozen=True)
class Comparison(Document):
    baseline: AuditRun
    candidate: AuditRun
    verdict: Verdict
    sections: tuple[Result, ...] = ()  # shown after the summary, e.g. the trade-off of a mitigation sweep

    def table(self) -> pd.DataFrame:
        """One row per metric of either run: both values, the change, and whether it is better. A metric whose
        result carries a caveat in either run (e.g. a model that predicts one class for nearly every row, whose
        small fairness gaps come from not discriminating at all) is flagged with it, never called better or
        worse."""
        base, cand = self.baseline.metrics, self.candidate.metrics
        caveats = _caveats(self.baseline, "baseline")
        for metric, caveat in _caveats(self.candidate, "candidate").items():
            caveats[metric] = "; ".join(filter(None, (caveats.get(metric), caveat)))
        rows = []
        for metric in dict.fromkeys([*base, *cand]):
            b, c = base.get(metric), cand.get(metric)
            delta = c - b if b is not None and c is not None else None
            spec = find_metric_spec(metric)
            flagged = caveats.get(metric)
            if delta is None or spec is None or delta == 0 or flagged:
                better = None
            else:
                better = (delta > 0) == (spec.better == "higher")
            rows.append({"metric": metric, "baseline": b, "candidate": c, "change": delta, "improved": better,
                         "flag": flagged})
        return pd.DataFrame(rows, columns=["metric", "baseline", "candidate", "change", "improved", "flag"])

    def to_dict(self) -> dict:
        table = self.table()
        table = table.astype(object).where(table.notna(), None)
        return {
            "schema": SCHEMA.replace("report", "compare"),
            "baseline": self.baseline.to_dict(),
            "candidate": self.candidate.to_dict(),
            "changes": table.to_dict(orient="records"),
            "verdict": self.verdict.to_dict(),
            "sections": {section.analyzer: section.to_dict() for section in self.sections},
        }

    def render_html(self, *, standalone: bool = True) -> str:
        from audit.report.html import render_comparison

        return render_comparison(self, standalone=standalone)


def _caveats(audit_run: AuditRun, which: str) -> dict[str, str]:
    """Metric -> "<which>: <its result's caveat>", for the metrics of the results that carry one."""
    return {metric: f"{which}: {r.caveat}" for r in audit_run.results if r.caveat for metric in r.metrics}


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
    engine: str | Engine | None = None,
) -> Comparison:
    """Audit both models on `data` with the same analyzers and seed, on one `engine` (as `run`'s); gate the
    candidate against the baseline."""
    if baseline.modality != candidate.modality:
        raise AuditInputError(f"cannot compare a {baseline.modality} model with a {candidate.modality} model")
    kwargs = dict(seed=seed, samples=samples, options=options, command=command, policy=policy)
    with running_on(engine):
        base_run = run(baseline, data, analyzers, **kwargs)
        cand_run = run(candidate, data, analyzers, **kwargs)
    verdict = (policy or Policy()).evaluate(cand_run, baseline=base_run)
    return Comparison(base_run, dataclasses.replace(cand_run, verdict=verdict), verdict)
