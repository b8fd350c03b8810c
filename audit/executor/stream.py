"""A streamed audit: one pass of the model over chunks of the data, in bounded memory.

The predictions are a map of `predict_fn` over the chunks on the running engine
(`audit.engine.current()`). Each analyzer that has a tally (performance, fairness) adds
every chunk to its counts; every other analyzer runs afterwards, as in memory, on a seeded
sample drawn while streaming (audit.core.reservoir), as large as the largest `samples`
they ask for, and the same whatever the chunk size. Performance and fairness give the same
numbers as an in-memory run, which feeds their tallies the whole data at once.
"""

from __future__ import annotations

import dataclasses
import itertools
import time
import traceback
from collections import deque
from collections.abc import Sequence
from datetime import datetime, timezone

import numpy as np

from audit import engine
from audit.core.analyzer import Analyzer, Tally, judged
from audit.core.result import Result
from audit.core.dataset import Dataset, concat
from audit._util.errors import AuditInputError
from audit.policy.gates import Policy
from audit._util.progress import rows
from audit.executor.runner import AuditRun, _run_one, assemble, describe_model, error_result, resolve_analyzers
from audit.core.reservoir import Reservoir
from audit.io.sources import Source


def predict_fn(model, chunk: Dataset) -> np.ndarray:
    """The model's probabilities for one chunk (not cached: each chunk is seen once)."""
    return model.predict_proba(chunk, cache=False)


def sample_size(analyzers: Sequence[Analyzer], modality: str) -> int:
    """Rows the analyzers without a tally read (their `samples`), and the text counterfactual probe's."""
    sizes = [a.samples for a in analyzers if type(a).tally is Analyzer.tally and "samples" in a.config()]
    fairness = [a.samples for a in analyzers if a.name == "fairness" and modality == "text"]
    return max([*sizes, *fairness, 0])


def run_stream(model, source: Source, analyzers: Sequence[str | Analyzer] | None = None, *, seed: int = 0,
               policy: Policy | None = None, samples: int | None = None, options: dict[str, dict] | None = None,
               command: str | None = None, chunk_rows: int | None = None) -> AuditRun:
    """Audit `model` on the streamed `source`, as `audit.run` audits a `Dataset` (same analyzers, metric
    names and report)."""
    objects = resolve_analyzers(analyzers, options, samples)
    started = datetime.now(timezone.utc)
    census = source.census(model.classes, chunk_rows)
    chunks = source.chunks(model.classes, chunk_rows)
    first = next(chunks)
    model.labels(first)
    supported = [a for a in objects if a.supports(model, first)]
    tallies: dict[str, Tally] = {}
    failed: dict[str, tuple[Exception, str]] = {}  # analyzer -> its exception: an error result, as in memory
    for a in supported:
        try:
            tally = a.tally(model, census.values, seed=seed)
        except Exception as exc:  # noqa: BLE001
            failed[a.name] = exc, traceback.format_exc(limit=8)
            continue
        if tally is not None:
            tallies[a.name] = tally
    spent = {name: 0.0 for name in [*tallies, *failed]}
    reservoir = Reservoir(sample_size(supported, model.modality), seed, take=Dataset.subset, join=concat)
    pending: deque[Dataset] = deque()

    def feed():
        for chunk in itertools.chain((first,), chunks):
            pending.append(chunk)
            yield chunk

    start = 0
    for proba in rows(engine.current().map(predict_fn, model, feed()), desc="predict", total=census.rows):
        chunk = pending.popleft()
        for name, tally in tallies.items():
            if name in failed:
                continue
            began = time.perf_counter()
            try:
                tally.add(chunk, proba, start)
            except AuditInputError:
                raise
            except Exception as exc:  # noqa: BLE001
                failed[name] = exc, traceback.format_exc(limit=8)
            spent[name] += time.perf_counter() - began
        reservoir.add(chunk, start, len(chunk))
        start += len(chunk)
    sample = reservoir.sample() or first.subset([])
    results = []
    thresholds = (policy or Policy()).thresholds
    for a in objects:
        if a.name in tallies or a.name in failed:
            result = _tallied(a, tallies.get(a.name), sample, spent[a.name], failed.get(a.name))
        else:
            result = _run_one(a, model, sample, seed)
        results.append(judged(a, result, thresholds))
    described = {"name": source.name, "sha256": source.sha256(), "rows": start, "modality": source.modality,
                 "target": source.target, "classes": list(census.classes), "sensitive": list(census.values.counts),
                 "source": {**source.describe, "streamed": True, "sample_rows": len(sample)}}
    return assemble(describe_model(model), described, tuple(results), seed=seed, policy=policy, started=started,
                    command=command, device=str(model.device))


def _tallied(analyzer: Analyzer, tally: Tally | None, sample: Dataset, seconds: float,
             failure: tuple[Exception, str] | None) -> Result:
    """The result of a tally, or the error result of its analyzer (as `audit.executor.runner` makes one)."""
    began = time.perf_counter()
    if failure is None:
        try:
            return dataclasses.replace(tally.result(sample), seconds=seconds + time.perf_counter() - began)
        except Exception as exc:  # noqa: BLE001
            failure = exc, traceback.format_exc(limit=8)
    return error_result(analyzer, *failure, seconds + time.perf_counter() - began)
