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
from audit._util.progress import labelled
from audit.core.model import Model
from audit.policy.gates import GateResult, Policy, Verdict, find_metric_spec
from audit.executor.document import Document
from audit.executor.runner import SCHEMA, AuditRun, run


@dataclass(frozen=True)
class Failures:
    """The candidate's failed gates, told apart by the baseline's own verdict: a gate the baseline fails too, and
    that the candidate does not fail by its change from the baseline, fails as the baseline did; any other failed
    gate newly fails (a regression)."""

    as_baseline: tuple[GateResult, ...] = ()
    new: tuple[GateResult, ...] = ()

    @classmethod
    def of(cls, candidate: Verdict, baseline: Verdict) -> Failures:
        inherited = {g.gate for g in baseline.failed}
        split = {True: [], False: []}
        for g in candidate.failed:
            split[g.gate in inherited and not _worse_than_allowed(g)].append(g)
        return cls(tuple(split[True]), tuple(split[False]))

    @property
    def summary(self) -> str:
        """"1 gate newly fails (a regression); 2 fail as the baseline did", or "" when no gate fails."""
        parts = []
        if self.new:
            parts.append(f"{_gates(self.new)} newly fail{'s' if len(self.new) == 1 else ''} (a regression)")
        if self.as_baseline:
            parts.append(f"{_gates(self.as_baseline)} fail{'s' if len(self.as_baseline) == 1 else ''} "
                         "as the baseline did")
        return "; ".join(parts)

    def to_dict(self) -> dict:
        return {"new": [g.to_dict() for g in self.new], "as_baseline": [g.to_dict() for g in self.as_baseline]}


def _gates(gates: Sequence[GateResult]) -> str:
    return f"{len(gates)} gate{'s' if len(gates) > 1 else ''}"


def _worse_than_allowed(result: GateResult) -> bool:
    """Whether a change gate's bound on candidate - baseline is exceeded: a regression whatever the baseline's
    own value did."""
    gate = result.gate
    if result.value is None or result.baseline is None:
        return False
    change = result.value - result.baseline
    return (gate.max_increase is not None and change > gate.max_increase) or \
        (gate.max_decrease is not None and -change > gate.max_decrease)


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

    @property
    def failures(self) -> Failures:
        return Failures.of(self.verdict, self.baseline.verdict)

    def to_dict(self) -> dict:
        table = self.table()
        table = table.astype(object).where(table.notna(), None)
        return {
            "schema": SCHEMA.replace("report", "compare"),
            "baseline": self.baseline.to_dict(),
            "candidate": self.candidate.to_dict(),
            "changes": table.to_dict(orient="records"),
            "verdict": self.verdict.to_dict(),
            "failures": self.failures.to_dict(),
            "sections": {section.analyzer: section.to_dict() for section in self.sections},
        }

    def render_html(self, *, standalone: bool = True) -> str:
        from audit.report.html import render_comparison

        return render_comparison(self, standalone=standalone)

    def log_mlflow(self, uri: str | None = None, experiment: str | None = None, *,
                   labels: tuple[str, str] = ("baseline", "candidate")) -> str:
        """Log this comparison to MLflow (`uri` and `experiment` as `AuditRun.log_mlflow`'s): a parent run with
        the verdict and the comparison's documents, and a child run per model named by `labels`. The parent's id."""
        from audit.report.tracking import Tracker

        return Tracker.open(uri, experiment).log_comparison(self, labels=labels)


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
        with labelled("baseline"):
            base_run = run(baseline, data, analyzers, **kwargs)
        with labelled("candidate"):
            cand_run = run(candidate, data, analyzers, **kwargs)
    verdict = (policy or Policy()).evaluate(cand_run, baseline=base_run)
    return Comparison(base_run, dataclasses.replace(cand_run, verdict=verdict), verdict)
