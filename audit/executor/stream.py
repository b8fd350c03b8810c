"""A streamed audit: one pass of the model over chunks of the data, in bounded memory.

The predictions are a map of `predict_fn` over the chunks on the running engine
(`audit.engine.current()`), fed to the one loop of audit.executor.loop: the analyzers with a
tally (performance, fairness) count every chunk and give the same numbers as in memory; every
other one runs on a seeded sample drawn while streaming, the same whatever the chunk size.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Iterator, Sequence
from datetime import datetime, timezone

import numpy as np

from audit import engine
from audit._util import memory
from audit._util.durations import budget_seconds
from audit.core.analyzer import Analyzer
from audit.core.dataset import Dataset
from audit.executor.examples import Spill
from audit.executor.loop import Feed, execute
from audit.executor.plan import checked_precision
from audit.executor.runner import AuditRun, assemble, describe_model, resolve_analyzers
from audit.io.sources import Source
from audit.policy.gates import Policy


def predict_fn(model, chunk: Dataset) -> np.ndarray:
    """The model's probabilities for one chunk (not cached: each chunk is seen once)."""
    return model.predict_proba(chunk, cache=False)


def predicted(model, chunks: Iterator[Dataset]) -> Iterator[tuple[Dataset, np.ndarray]]:
    """Each chunk with the model's probabilities, predicted on the current engine (in order)."""
    pending: deque[Dataset] = deque()

    def feed():
        for chunk in chunks:
            pending.append(chunk)
            yield chunk

    for proba in engine.current().map(predict_fn, model, feed()):
        yield pending.popleft(), proba


def run_stream(model, source: Source, analyzers: Sequence[str | Analyzer] | None = None, *, seed: int = 0,
               policy: Policy | None = None, samples: int | None = None, options: dict[str, dict] | None = None,
               command: str | None = None, chunk_rows: int | None = None, examples: bool = False,
               budget: float | str | None = None, precision: float | None = None,
               max_memory: int | str | None = None) -> AuditRun:
    """Audit `model` on the streamed `source`, as `audit.run` audits a `Dataset` (same analyzers, metric
    names and report, `budget`, `precision` and `max_memory`). With `examples`, every row's prediction is kept on
    disk as it streams past (a temporary Parquet file) for `AuditRun.save_examples`; `AuditRun.examples()` holds
    the sample's rows either way."""
    with memory.limited(max_memory):
        return _run_stream(model, source, analyzers, seed=seed, policy=policy, samples=samples, options=options,
                           command=command, chunk_rows=chunk_rows, examples=examples, budget=budget,
                           precision=precision)


def _run_stream(model, source: Source, analyzers, *, seed, policy, samples, options, command, chunk_rows,
                examples, budget, precision) -> AuditRun:
    objects = resolve_analyzers(analyzers, options, samples)
    started = datetime.now(timezone.utc)
    census = source.census(model.classes, chunk_rows)
    chunks = source.chunks(model.classes, chunk_rows)
    first = next(chunks)
    spill = Spill(model) if examples else None
    pairs = predicted(model, itertools.chain((first,), chunks))
    feed = Feed(first=first, chunks=spill.tap(pairs) if spill else pairs, values=census.values, rows=census.rows,
                progress="predict")
    executed = execute(model, feed, objects, seed=seed, thresholds=(policy or Policy()).thresholds,
                       budget=budget_seconds(budget), precision=checked_precision(precision))
    described = {"name": source.name, "sha256": source.sha256(), "rows": executed.rows, "modality": source.modality,
                 "target": source.target, "classes": list(census.classes), "sensitive": list(census.values.counts),
                 "source": {**source.describe, "streamed": True, "sample_rows": executed.sample_rows}}
    return assemble(describe_model(model), described, executed.results, seed=seed, policy=policy, started=started,
                    command=command, device=str(model.device), example_rows=executed.examples,
                    spill=spill, plan=executed.provenance())
