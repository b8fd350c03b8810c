"""The one loop every audit goes through: analyzers x a feed of chunks with the model's probabilities.

A `Feed` is the data as chunks (in memory: one chunk, the data itself) paired with a predictor's
probabilities for each (a model's forward passes on the current engine, or the columns of a
predictions table). Each analyzer that has a tally (performance, fairness) adds every chunk to its
counts; every other analyzer runs afterwards on the data in memory, or on a seeded sample drawn
while streaming (audit.core.reservoir), as large as the most rows any analyzer reads, and the same
whatever the chunk size. An analyzer that raises, in its tally or its run, becomes a Result with
status "error" and the same message on every path; the run goes on. Input that is wrong for the
model (a label it does not know), or a setting that cannot apply to it (`Analyzer.check`: a positive class it
does not have), is the user's to fix: it stops the run with one clear line, the latter before anything is read.
"""

from __future__ import annotations

import dataclasses
import random
import time
import traceback
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import matplotlib
import numpy as np
import pandas as pd
import torch

from audit._util import memory
from audit._util.progress import announce, rows, steps
from audit.core.analyzer import Analyzer, Tally, judged
from audit.core.dataset import Dataset, concat
from audit.core.groups import SensitiveValues
from audit.core.reservoir import Reservoir
from audit.core.result import Result
from audit.executor.examples import example_rows, in_data_rows
from audit.executor.plan import PREDICT, Plan, make_plan, probe, within_budget
from audit.plots import PLAIN_TEXT

NEEDS_MODEL = "needs the model itself; only its predictions were given"


@dataclass(frozen=True)
class Feed:
    """What an audit reads: `chunks`, each with the predictor's probabilities (rows, classes), in data order."""

    first: Dataset  # the first chunk (or a few of its rows): which analyzers apply, which labels the model knows
    chunks: Iterable[tuple[Dataset, np.ndarray]]
    values: SensitiveValues  # every sensitive value of the whole data, counted: groups are decided once
    rows: int  # of the whole data
    whole: Dataset | None = None  # in memory: the data, which the analyzers without a tally read whole
    progress: str | None = None  # streamed: the progress line's name ("predict: 2,000 rows in 3 s")
    model_given: bool = True  # False: only predictions; the analyzers that need a model are skipped


@dataclass(frozen=True)
class Executed:
    """What `execute` gives back: the judged results, and what the data's description needs."""

    results: tuple[Result, ...]
    rows: int  # rows read
    sample_rows: int  # rows the analyzers without a tally read
    examples: pd.DataFrame  # `example_rows` of the rows they read (in memory: every row)
    plan: Plan | None = None  # made before the work, when a model was given
    predicting: float = 0.0  # seconds of reading the chunks and predicting them
    rounds: dict[str, list] = dataclasses.field(default_factory=dict)  # a precision's [examples, width] per round

    def provenance(self) -> dict:
        """What the run's document records of the plan: per step its passes, planned and actual seconds."""
        if self.plan is None:
            return {}
        actual = {PREDICT: self.predicting, **{r.analyzer: r.seconds for r in self.results}}
        plan = self.plan.to_dict(actual)
        for name, rounds in self.rounds.items():
            plan["steps"].get(name, {})["precision_rounds"] = rounds
        return {"plan": plan}


def execute(model, feed: Feed, analyzers: Sequence[Analyzer], *, seed: int, thresholds: Mapping[str, float],
            budget: float | None = None, precision: float | None = None) -> Executed:
    """Every analyzer's judged result on the feed, in the order of `analyzers`. With a model, a plan is made
    first and shown; with a `budget` (seconds), the analyzers' examples are cut until the plan fits it. With a
    `precision`, an analyzer with examples and an interval on its headline metric works on more examples only
    while that interval is wider than `precision`."""
    for a in analyzers:
        a.check(model)
    model.labels(feed.first)
    skipped = [_skipped(a, model, feed) for a in analyzers]
    tallies: dict[int, Tally] = {}  # by the analyzer's position
    failed: dict[int, Result] = {}
    spent = [0.0] * len(analyzers)
    for i, a in enumerate(analyzers):
        if skipped[i] is None:
            began = time.perf_counter()
            try:
                tally = a.tally(model, feed.values, seed=seed)
            except Exception as exc:  # noqa: BLE001 - a failing analyzer becomes an error result
                failed[i], tally = error_result(a, exc, traceback.format_exc(limit=8)), None
            if tally is not None:
                tallies[i] = tally
            spent[i] += time.perf_counter() - began
    plan = None
    speed = probe(model, feed.first) if feed.model_given else None
    if speed is not None:
        runnable = [i for i, a in enumerate(analyzers) if skipped[i] is None and i not in failed]
        chosen = [analyzers[i] for i in runnable]
        if budget is None:
            plan = make_plan(model, speed, chosen, rows=feed.rows)
        else:
            chosen, plan = within_budget(model, speed, chosen, rows=feed.rows, budget=budget)
            analyzers = list(analyzers)
            for i, a in zip(runnable, chosen):
                analyzers[i] = a
        announce(plan.lines())
    per_row = [a for i, a in enumerate(analyzers) if skipped[i] is None and i not in tallies and i not in failed]
    size = max([*(t.sample_rows for t in tallies.values()), *(a.sample_rows(model) for a in per_row), 0])
    reservoir = Reservoir(size, seed, take=_take, join=_join)  # rows with their probabilities
    chunks = feed.chunks if feed.progress is None else rows(feed.chunks, desc=feed.progress, total=feed.rows,
                                                            size=lambda pair: len(pair[0]))
    start, whole, reading = 0, [], time.perf_counter()
    for chunk, proba in chunks:
        model.labels(chunk)
        for i, tally in tallies.items():
            if i not in failed:
                began = time.perf_counter()
                try:
                    tally.add(chunk, proba, start)
                except Exception as exc:  # noqa: BLE001
                    failed[i] = error_result(analyzers[i], exc, traceback.format_exc(limit=8))
                spent[i] += time.perf_counter() - began
        if feed.whole is None:
            reservoir.add((chunk, proba), start, len(chunk))
        else:
            whole.append(proba)
        start += len(chunk)
    predicting = time.perf_counter() - reading - sum(spent[i] for i in tallies)  # the reading and predicting
    if feed.whole is not None:
        sample, sample_proba, positions = feed.whole, np.concatenate(whole), np.arange(start)
    else:
        sample, sample_proba = reservoir.sample() or (feed.first.subset([]), np.empty((0, len(model.classes))))
        positions = np.sort(reservoir.rows)
    results, rounds = [], {}
    planned = (lambda pair: plan.planned(pair[1].name) or 0.0) if plan is not None else None
    for i, a in steps(list(enumerate(analyzers)), desc="audit", name=lambda pair: pair[1].name, planned=planned):
        if skipped[i] is not None:
            result = skipped[i]
        elif i in failed:
            result = dataclasses.replace(failed[i], seconds=spent[i])
        elif i in tallies:
            result = _timed(a, tallies[i].result, sample, seed, spent[i])
        else:
            result = _timed(a, lambda part, a=a: a.run(model, part, seed=seed), sample, seed, 0.0) \
                if precision is None else _until_precise(a, model, sample, seed, precision, rounds)
        results.append(in_data_rows(judged(a, result, thresholds), positions))
    return Executed(tuple(results), start, len(sample), example_rows(model, sample, sample_proba, positions), plan,
                    predicting, rounds)


def _take(pair: tuple[Dataset, np.ndarray], positions: np.ndarray) -> tuple[Dataset, np.ndarray]:
    return pair[0].subset(positions), pair[1][positions]


def _join(pairs: list[tuple[Dataset, np.ndarray]]) -> tuple[Dataset, np.ndarray]:
    return concat([p[0] for p in pairs]), np.concatenate([p[1] for p in pairs])


FIRST_ROUND = 32  # examples of the first round of an analyzer run to a precision; each round doubles them


def _until_precise(analyzer: Analyzer, model, data: Dataset, seed: int, precision: float,
                   rounds: dict[str, list]) -> Result:
    """`analyzer`'s result on FIRST_ROUND examples, then twice as many, ... until its headline interval is at
    most `precision` wide or it has all its examples; each round is a seeded run of its own, so the result is
    the one a run with that many examples gives. `rounds` gets [examples, interval width] per round."""
    full = analyzer.sample_size(model, len(data)) if analyzer.headline else 0
    n, spent = min(full, FIRST_ROUND), 0.0
    while True:
        current = dataclasses.replace(analyzer, samples=n) if full and n < full else analyzer
        result = _timed(current, lambda part: current.run(model, part, seed=seed), data, seed, spent)
        interval = current.interval(result) if result.status == "ok" else None
        width = interval[1] - interval[0] if interval is not None else None
        if full:
            rounds.setdefault(analyzer.name, []).append([n, None if width is None else round(width, 4)])
        if (width is not None and width <= precision) or not full or n >= full or result.status != "ok":
            return result
        n, spent = full if width is None else min(full, 2 * n), result.seconds


def _skipped(analyzer: Analyzer, model, feed: Feed) -> Result | None:
    """The skipped result of an analyzer that cannot run on this feed; None when it can."""
    if analyzer.needs_model and not feed.model_given:
        reason = NEEDS_MODEL
    elif not analyzer.supports(model, feed.first):
        reason = f"not applicable to this {model.modality} model and data"
    else:
        return None
    return Result(analyzer=analyzer.name, status="skipped", config=analyzer.config(), details={"reason": reason})


def _timed(analyzer: Analyzer, work, data: Dataset, seed: int, seconds: float) -> Result:
    """`work(data)`'s result, its seconds added to `seconds`, seeded as every analyzer is, with a warning for each
    pass the memory budget shrank; an error result if it raises."""
    began = time.perf_counter()
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    try:
        with matplotlib.rc_context(PLAIN_TEXT), memory.noted() as shrunk:
            result = work(data)
    except Exception as exc:  # noqa: BLE001 - a failing analyzer becomes an error result
        return error_result(analyzer, exc, traceback.format_exc(limit=8), seconds + time.perf_counter() - began)
    return dataclasses.replace(result, seconds=seconds + time.perf_counter() - began,
                               warnings=(*result.warnings, *shrunk))


def error_result(analyzer: Analyzer, exc: BaseException, trace: str, seconds: float = 0.0) -> Result:
    """The Result of an analyzer that raised `exc` (its traceback `trace`): the run goes on."""
    return Result(analyzer=analyzer.name, status="error", config=analyzer.config(),
                  error=f"{type(exc).__name__}: {exc}", details={"traceback": trace}, seconds=seconds)
