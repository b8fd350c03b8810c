"""`run()` applies analyzers to a model and data; `AuditRun` holds what they found."""

from __future__ import annotations

import dataclasses
import platform
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import pandas as pd

from audit._util import distribution, memory
from audit._util.durations import budget_seconds
from audit._util.errors import AuditInputError
from audit._util.files import write_atomic
from audit.core.analyzer import ANALYZERS, Analyzer
from audit.core.dataset import Dataset
from audit.core.groups import SensitiveValues
from audit.core.model import Model
from audit.core.result import Result
from audit.engine import Engine, running_on
from audit.engine import current as current_engine
from audit.executor.document import Document
from audit.executor.examples import Spill, joined, outcomes, write_parquet
from audit.executor.loop import Feed, execute
from audit.executor.plan import checked_precision
from audit.policy.gates import Policy, Verdict

if TYPE_CHECKING:
    from audit.report.evidence import Evidence

SCHEMA = "audit.report/1"
LIBRARIES = ("torch", "captum", "shap", "lime", "fairlearn", "numpy", "pandas", "scikit-learn")


@dataclass(frozen=True)
class AuditRun(Document):
    """All results of one audit, with provenance and the policy's verdict."""

    model: dict
    data: dict
    results: tuple[Result, ...]
    verdict: Verdict
    seed: int = 0
    provenance: dict = field(default_factory=dict)
    # The columns every audited example has (`audit.executor.examples.example_rows`): every row in memory, the
    # sample's rows when streamed; and, streamed with `examples=True`, every row's on disk. Not in the JSON.
    example_rows: pd.DataFrame | None = field(default=None, repr=False, compare=False)
    spill: Spill | None = field(default=None, repr=False, compare=False)

    @property
    def metrics(self) -> dict[str, float]:
        return {k: v for r in self.results for k, v in r.metrics.items()}

    @property
    def intervals(self) -> dict[str, tuple[float, float]]:
        return {k: v for r in self.results for k, v in r.intervals.items()}

    def __repr__(self) -> str:
        ran = ", ".join(f"{r.analyzer} {'ran' if r.status == 'ok' else r.status}" for r in self.results)
        return (f"AuditRun({self.model.get('path') or self.model.get('architecture')!r} on "
                f"{self.data.get('name')!r}, {self.data.get('rows', 0):,} rows: {self.verdict.summary})\n"
                f"  analyzers: {ran or 'none'}")

    def result(self, analyzer: str) -> Result:
        for r in self.results:
            if r.analyzer == analyzer:
                return r
        raise KeyError(f"no result for analyzer {analyzer!r}; ran: {', '.join(r.analyzer for r in self.results)}")

    def to_dict(self) -> dict:
        results = {r.analyzer: r.to_dict() for r in self.results}
        return {
            "schema": SCHEMA,
            "model": self.model,
            "data": self.data,
            "seed": self.seed,
            "metrics": {k: v for r in results.values() for k, v in r["metrics"].items()},
            "intervals": {k: v for r in results.values() for k, v in r["intervals"].items()},
            "results": results,
            "verdict": self.verdict.to_dict(),
            "provenance": self.provenance,
        }

    def examples(self) -> pd.DataFrame:
        """One row per audited example, indexed by its row in the data: prediction, label, probability, group
        values and each per-example analyzer's outcomes (`audit.executor.examples` documents the columns). A
        streamed run holds the rows of its seeded sample; `save_examples` writes every row."""
        if self.example_rows is None:
            return outcomes(self.results)
        return joined(self.example_rows, self.results)

    def write_examples(self, f: BinaryIO) -> None:
        """The per-example table as Parquet to the open binary file `f`: every row of the data, the analyzers'
        outcomes on the rows they read (null elsewhere), written in chunks when the run was streamed."""
        if self.data.get("source", {}).get("streamed") and self.spill is None:
            raise AuditInputError("this streamed run kept no prediction per row; run it with "
                                  "run_stream(..., examples=True) to write them")
        if self.example_rows is None:
            raise AuditInputError("this run holds no per-example rows")
        write_parquet(f, self.spill.chunks() if self.spill else [self.example_rows], outcomes(self.results))

    def save_examples(self, path: str | Path) -> Path:
        """`write_examples` to `path`, written atomically."""
        return write_atomic(path, self.write_examples)

    def render_html(self, *, standalone: bool = True) -> str:
        from audit.report.html import render_run

        return render_run(self, standalone=standalone)

    def to_model_card(self, *, intended_use: str | None = None, out_of_scope: str | None = None) -> str:
        """A Hugging Face model card (README.md): `model-index` results and the audit's evidence as text; the
        intended and out-of-scope use given, else those the model's spec stated."""
        from audit.report.model_card import render_model_card

        return render_model_card(self, intended_use=intended_use, out_of_scope=out_of_scope)

    def to_evidence(self) -> Evidence:
        """The evidence map for a reviewer (`audit.report.evidence.Evidence`: `to_markdown`, `to_json`): which
        EU AI Act and NIST AI RMF items this run covers, partly covers or does not, with its metrics."""
        from audit.report.evidence import evidence_of

        return evidence_of(self)

    def log_mlflow(self, uri: str | None = None, experiment: str | None = None) -> str:
        """Log this run to MLflow (`uri`: a tracking URI or a directory, default MLflow's own; `experiment`: default
        `MLFLOW_EXPERIMENT_NAME`, else "Default"): parameters, every metric with `_lower`/`_upper` for its
        interval, the verdict and finding counts as tags, HTML, JSON, Markdown and the model card as artifacts.
        The MLflow run's id. Needs the mlflow extra."""
        from audit.report.tracking import Tracker

        return Tracker.open(uri, experiment).log_run(self)


def resolve_analyzers(analyzers: Sequence[str | Analyzer] | None, options: dict[str, dict] | None = None,
                      samples: int | None = None) -> list[Analyzer]:
    """Analyzer objects from names or objects (`None`: the defaults), with per-name options; `samples`
    caps the examples of those that work per example."""
    options = dict(options or {})
    chosen = list(analyzers) if analyzers is not None else ANALYZERS.defaults()
    objects = [a if isinstance(a, Analyzer) else ANALYZERS.create(a, **options.pop(a, {})) for a in chosen]
    if options:
        raise AuditInputError(f"options given for analyzer(s) not run: {', '.join(options)}")
    if samples is not None:
        objects = [dataclasses.replace(a, samples=samples) if "samples" in a.config() else a for a in objects]
    return objects


def run(
    model: Model,
    data: Dataset,
    analyzers: Sequence[str | Analyzer] | None = None,
    *,
    seed: int = 0,
    policy: Policy | None = None,
    samples: int | None = None,
    options: dict[str, dict] | None = None,
    command: str | None = None,
    engine: str | Engine | None = None,
    budget: float | str | None = None,
    precision: float | None = None,
    max_memory: int | str | None = None,
) -> AuditRun:
    """Audit `model` on `data` with `analyzers` (names or configured objects; None: the defaults).

    `samples` caps the examples that per-example analyzers (explanations, attacks) work on.
    `engine` runs the batch work: "local" (this process), "ray" (a local Ray started and stopped
    here), an `audit.engine.Engine` (e.g. `RayEngine(address=...)` for a cluster), or None: the
    current one (`audit.engine.using`), local unless set. Same seed, same numbers on either.
    `budget` (seconds, or a duration such as "5m") cuts the per-example analyzers' examples until the plan
    made before the work fits it; the run's provenance says what was cut (`provenance["plan"]`). `precision`
    (an interval width) lets an analyzer with examples stop adding them, in rounds of doubling, once the interval
    of its headline metric (robustness: the robust accuracy's) is at most that wide.
    `max_memory` (bytes, or a size such as "2G"): the analyzers size their passes to keep the process under it
    (default: what the process holds at the start plus half the memory still available, `audit._util.memory`);
    a pass it shrinks is named in its analyzer's warnings.
    An analyzer that raises becomes a Result with status "error"; the run goes on.
    """
    with running_on(engine), memory.limited(max_memory):
        return _run(model, data, analyzers, seed=seed, policy=policy, samples=samples, options=options,
                    command=command, budget=budget_seconds(budget), precision=checked_precision(precision))


def _run(model, data, analyzers, *, seed, policy, samples, options, command, budget, precision) -> AuditRun:
    started = datetime.now(timezone.utc)
    objects = resolve_analyzers(analyzers, options, samples)
    feed = Feed(first=data, chunks=_whole(model, data), values=SensitiveValues.of(data.sensitive), rows=len(data),
                whole=data)
    executed = execute(model, feed, objects, seed=seed, thresholds=(policy or Policy()).thresholds, budget=budget,
                       precision=precision)
    return assemble(describe_model(model), data, executed.results, seed=seed, policy=policy, started=started,
                    command=command, device=str(model.device), example_rows=executed.examples,
                    plan=executed.provenance())


def _whole(model: Model, data: Dataset):
    """The data as one chunk, predicted once its labels are checked; the probabilities stay in the model's cache
    for the analyzers that read rows."""
    yield data, model.predict_proba(data)


def assemble(model: dict, data: Dataset | dict, results: tuple[Result, ...], *, seed: int, policy: Policy | None,
             started: datetime, command: str | None, device: str, example_rows: pd.DataFrame | None = None,
             spill: Spill | None = None, plan: dict | None = None) -> AuditRun:
    """The run of `results` on `data` (or its description): the verdict of `policy` (None: the built-in
    default policy) and the provenance (with the `plan` the executor made, where it made one); `example_rows` and
    `spill` its per-example rows (`AuditRun.examples`)."""
    judged_by = policy or Policy()
    described = data if isinstance(data, dict) else describe_data(data)
    skeleton = AuditRun(model=model, data=described, results=results, verdict=Verdict("ungated"), seed=seed)
    provenance = {
        "started": started.isoformat(timespec="seconds"),
        "seconds": round(sum(r.seconds for r in results), 3),
        "timings": {r.analyzer: round(r.seconds, 3) for r in results},
        "command": command or " ".join(sys.argv),
        "policy": policy.source if policy else "the built-in default policy (audit policy --default)",
        "versions": library_versions(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "device": device,
        "engine": current_engine().name,
        **(plan or {}),
    }
    return dataclasses.replace(skeleton, verdict=judged_by.evaluate(skeleton), provenance=provenance,
                               example_rows=example_rows, spill=spill)


def describe_model(model: Model) -> dict:
    return {
        "path": model.source.get("path"),
        "sha256": model.source.get("sha256"),
        "architecture": model.module_name,
        "modality": model.modality,
        "classes": list(model.classes),
        "trained_on": dict(model.task.dataset),
        "training_metrics": dict(model.task.metrics),
        **({"postprocessing": model.task.postprocessing.to_dict()} if model.task.postprocessing else {}),
        **model.task.use(),
    }


def describe_data(data: Dataset) -> dict:
    return {
        "name": data.name,
        "sha256": data.sha256,
        "rows": len(data),
        "modality": data.modality,
        "target": data.target,
        "classes": list(data.classes),
        "sensitive": list(data.sensitive_names),
        "source": dict(data.source),
    }


def library_versions() -> dict[str, str]:
    versions = {distribution.DISTRIBUTION: distribution.version()}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions
