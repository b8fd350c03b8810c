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
from audit._util.durations import duration
from audit._util.errors import AuditInputError
from audit._util.progress import announce, rows, steps
from audit.core.analyzer import Analyzer, Tally, judged
from audit.core.dataset import Dataset, concat
from audit.core.groups import SensitiveValues
from audit.core.reservoir import Reservoir
from audit.core.result import Result
from audit.executor.examples import example_rows, in_data_rows
from audit.executor.plan import PREDICT, Plan, Speed, Used, make_plan, probe, within_budget
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
    rounds: dict[str, list] = dataclasses.field(default_factory=dict)  # [examples, interval width] per round
    used: dict[str, Used] = dataclasses.field(default_factory=dict)  # under a budget or a precision

    def provenance(self) -> dict:
        """What the run's document records of the plan: per step its passes, planned and actual seconds; under a
        budget or a precision, the examples each per-example analyzer used of those planned, why it stopped, and
        its rounds."""
        if self.plan is None:
            return {}
        actual = {PREDICT: self.predicting, **{r.analyzer: r.seconds for r in self.results}}
        plan = self.plan.to_dict(actual)
        for name, step in plan["steps"].items():
            if name in self.used:
                step["examples"] = self.used[name].to_dict()
            if name in self.rounds:
                step["rounds"] = self.rounds[name]
        return {"plan": plan}


def execute(model, feed: Feed, analyzers: Sequence[Analyzer], *, seed: int, thresholds: Mapping[str, float],
            budget: float | None = None, precision: float | None = None) -> Executed:
    """Every analyzer's judged result on the feed, in the order of `analyzers`. With a model, a plan is made
    first and shown; with a `budget` (seconds), the analyzers' examples are cut until the plan fits it, and
    before each per-example analyzer those still to run are planned again within the seconds left. A per-example
    analyzer with an interval on its headline metric then runs in rounds of more and more examples (`_in_rounds`)
    and stops adding them once that interval is decided against the threshold its findings judge it by
    (`Analyzer.decided`, under a budget) or is at most `precision` wide (with a `precision`)."""
    started = _Clock.now()  # what a budget counts from
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
    runnable = [i for i, a in enumerate(analyzers) if skipped[i] is None and i not in failed]
    chosen = [analyzers[i] for i in runnable]
    speed = probe(model, feed.first, chosen) if feed.model_given else None
    asked = list(analyzers)  # as configured: what a re-plan cuts from again
    if speed is not None:
        if budget is None:
            plan = make_plan(model, speed, chosen, rows=feed.rows)
        else:
            chosen, plan = within_budget(model, speed, chosen, rows=feed.rows, budget=budget,
                                         spent=_Clock.now() - started)
            analyzers = list(analyzers)
            for i, a in zip(runnable, chosen):
                analyzers[i] = a
                if a.name in plan.dropped and i in tallies:  # a per-example one may fit later: it is planned again
                    skipped[i] = _left_out(a, plan.dropped[a.name])
        announce(plan.lines())
    per_row = [i for i in range(len(analyzers)) if skipped[i] is None and i not in tallies and i not in failed]
    # as many rows as asked: a re-plan gives an analyzer back the examples that one before it did not spend
    size = max([*(t.sample_rows for t in tallies.values()), *(asked[i].sample_rows(model) for i in per_row), 0])
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
    clock = None
    if plan is not None and budget is not None:
        if len(sample):  # the accuracy the attacks are re-planned on: the rows read, not the probe's few
            accuracy = float(np.mean(sample_proba.argmax(1) == model.labels(sample)))
            speed = dataclasses.replace(speed, probed=dataclasses.replace(speed.probed, accuracy=accuracy))
        clock = _Clock(model, speed, feed.rows, budget, started)
    adaptive = _Adaptive(model, sample, seed, thresholds, precision, clock)
    results = []
    planned = (lambda pair: plan.planned(pair[1].name) or 0.0) if plan is not None else None
    for i, a in steps(list(enumerate(analyzers)), desc="audit", name=lambda pair: pair[1].name, planned=planned):
        if skipped[i] is not None:
            result = skipped[i]
        elif i in failed:
            result = dataclasses.replace(failed[i], seconds=spent[i])
        elif i in tallies:
            result = _timed(a, tallies[i].result, sample, seed, spent[i])
        else:
            result = adaptive.run(a, [asked[j] for j in range(i, len(analyzers)) if j in per_row or j in tallies])
        results.append(in_data_rows(judged(a, result, thresholds), positions))
    if adaptive.used:
        announce(f"plan: {u.line()}" for u in adaptive.used.values())
    return Executed(tuple(results), start, len(sample), example_rows(model, sample, sample_proba, positions), plan,
                    predicting, adaptive.rounds, adaptive.used)


def _take(pair: tuple[Dataset, np.ndarray], positions: np.ndarray) -> tuple[Dataset, np.ndarray]:
    return pair[0].subset(positions), pair[1][positions]


def _join(pairs: list[tuple[Dataset, np.ndarray]]) -> tuple[Dataset, np.ndarray]:
    return concat([p[0] for p in pairs]), np.concatenate([p[1] for p in pairs])


FIRST_ROUND = 32  # examples of an analyzer's first round; each later round has at least twice as many


class _Clock:
    """A budget's seconds as the work spends them: before each per-example analyzer, the analyzers still to run
    are planned again, as asked, within the seconds left (`within_budget`), so what one did not spend goes to
    the next; the seconds left are divided by how much slower than planned the analyzers have run so far (never
    multiplied: a plan too slow only leaves time unspent)."""

    now = staticmethod(time.perf_counter)  # what the budget is counted on (a test's fake clock)

    def __init__(self, model, speed: Speed, rows: int, budget: float, began: float):
        self.model, self.speed, self.rows, self.budget, self.began = model, speed, rows, budget, began
        self.planned = self.actual = 0.0

    def seconds(self, analyzer: Analyzer) -> float:
        return self.speed.seconds(analyzer.cost(self.model, self.rows, probed=self.speed.probed))

    def fit(self, ahead: list[Analyzer], first: Analyzer | None) -> tuple[Analyzer | Result, float]:
        """The first of `ahead` (the analyzers still to run, as asked) with the examples the seconds left allow,
        after its `first` round where it runs in rounds and has more examples than that round even so, and the
        seconds it may take: those left less what the plan gives the others. Where the plan leaves it out, or its
        fewest examples take longer than the seconds left, its skipped result instead."""
        slower = max(1.0, self.actual / self.planned) if self.planned else 1.0
        left = (self.budget - (self.now() - self.began)) / slower
        fitted, plan = self._within(ahead, left)
        if first is not None and fitted[0].sample_size(self.model, self.rows) > FIRST_ROUND:
            after_first = self._within(ahead, left - self.seconds(first))
            if after_first[0][0].sample_size(self.model, self.rows) > FIRST_ROUND:
                fitted, plan = after_first
        current = fitted[0]
        if current.name in plan.dropped or self.seconds(current) > left:
            return _left_out(current, plan.dropped.get(current.name, self.seconds(current))), 0.0
        return current, max(0.0, left - (plan.seconds - self.seconds(current))) * slower

    def _within(self, ahead: list[Analyzer], seconds: float) -> tuple[list[Analyzer], Plan]:
        try:
            return within_budget(self.model, self.speed, ahead, rows=self.rows, budget=seconds, predicted=True)
        except AuditInputError:  # too little left for the fewest examples: the fewest
            fitted = [a.scaled(self.model, self.rows, 0.0) for a in ahead]
            return fitted, make_plan(self.model, self.speed, fitted, rows=self.rows, predicted=True)

    def spent(self, planned: float, seconds: float) -> None:
        self.planned += planned
        self.actual += seconds


@dataclass
class _Adaptive:
    """The per-example analyzers' runs. Without a budget or a precision, one run each. Under a `clock` (a budget)
    each is fitted to the seconds left first. One with an interval on its headline metric and more than
    FIRST_ROUND examples runs in rounds (`rounds`) where something can stop it early: under a budget, its
    judgement decided (`Analyzer.decided` against `thresholds`); with a `precision`, its interval that narrow.
    `used` records, under either, the examples each used of those planned and why it stopped."""

    model: object
    data: Dataset  # the rows the per-example analyzers read
    seed: int
    thresholds: Mapping[str, float]
    precision: float | None
    clock: _Clock | None
    rounds: dict[str, list] = dataclasses.field(default_factory=dict)  # [examples, interval width] per round
    used: dict[str, Used] = dataclasses.field(default_factory=dict)

    def run(self, planned: Analyzer, ahead: list[Analyzer]) -> Result:
        """The result of `planned` (as the plan before the work has it); `ahead`: it and those still to run after
        it, as asked."""
        model, rows, asked = self.model, len(self.data), ahead[0]
        decides = self.clock is not None and asked.judged_by in self.thresholds
        rounds = bool(asked.headline and "samples" in asked.config() and asked.sample_size(model, rows) > FIRST_ROUND
                      and (self.precision is not None or decides))
        first = dataclasses.replace(asked, samples=FIRST_ROUND) if rounds else None
        current, allowance = self.clock.fit(ahead, first) if self.clock is not None else (planned, None)
        if isinstance(current, Result):
            return current
        full = current.sample_size(model, rows)
        began = _Clock.now()
        if rounds and full > FIRST_ROUND:
            result, n, stopped = self._in_rounds(current, full, allowance, decides)
        else:
            result = _timed(current, lambda part: current.run(model, part, seed=self.seed), self.data, self.seed, 0.0)
            n, stopped, first = full, None if result.status == "ok" else "error", None
        if self.clock is not None:
            self.clock.spent(self.clock.seconds(current) + (self.clock.seconds(first) if first else 0.0),
                             _Clock.now() - began)
        if (self.clock is not None or self.precision is not None) and full:
            stopped = stopped or ("all" if n >= asked.sample_size(model, rows) else "budget")
            self.used[asked.name] = Used(asked.name, planned.sample_size(model, rows), n, stopped)
        return result

    def _in_rounds(self, analyzer: Analyzer, full: int, allowance: float | None,
                   decides: bool) -> tuple[Result, int, str | None]:
        """`analyzer`'s result on FIRST_ROUND examples, then on more, until `_stopped` gives a reason, it has `full`
        examples, or (with an `allowance` of seconds) a next round large enough would not fit in what is left of
        it. The rounds' examples are nested, each a prefix of one seeded order of the rows, and each round is a run
        of its own on them: the result is the one a run on the last round's examples gives. With a precision the
        rounds double (the last goes to `full` where a double would leave less than one more), else the second is
        the last, at `full`; either way all rounds together read less than twice the last round's examples. Gives
        the result, its examples and why it stopped (None: it has all `full`)."""
        order = np.random.default_rng(self.seed).permutation(len(self.data))
        log = self.rounds.setdefault(analyzer.name, [])
        n, spent, began = FIRST_ROUND, 0.0, _Clock.now()
        while True:
            rows, current, start = np.sort(order[:n]), dataclasses.replace(analyzer, samples=n), _Clock.now()
            result = _timed(current, lambda part: current.run(self.model, part, seed=self.seed),
                            self.data.subset(rows), self.seed, spent)
            result, took = in_data_rows(result, rows), _Clock.now() - start
            interval = analyzer.interval(result) if result.status == "ok" else None
            log.append([n, None if interval is None else round(interval[1] - interval[0], 4)])
            if result.status != "ok":
                return result, n, "error"
            if (why := self._stopped(analyzer, result, interval, decides)) is not None:
                return result, n, why
            if n >= full:
                return result, n, None
            following = full if self.precision is None or interval is None or 4 * n > full else 2 * n
            if allowance is not None:
                following = self._affordable(analyzer, n, following, allowance - (_Clock.now() - began), took)
                if following < min(2 * n, full):
                    return result, n, "budget"
            n, spent = following, result.seconds

    def _stopped(self, analyzer: Analyzer, result: Result, interval, decides: bool) -> str | None:
        if decides and analyzer.decided(result, self.thresholds):
            return "decided"
        if self.precision is not None and interval is not None and interval[1] - interval[0] <= self.precision:
            return "precise"
        return None

    def _affordable(self, analyzer: Analyzer, n: int, most: int, left: float, took: float) -> int:
        """The most examples, up to `most`, a round can have in `left` seconds: priced by the plan, scaled by how
        long the round of `n` examples `took` against its plan."""
        def price(m: int) -> float:
            return self.clock.seconds(dataclasses.replace(analyzer, samples=m))

        if price(n) <= 0:
            return most
        pace, low, high = took / price(n), n, most
        while low < high:  # the largest m in [n, most] whose round fits; n where none larger does
            middle = (low + high + 1) // 2
            low, high = (middle, high) if price(middle) * pace <= left else (low, middle - 1)
        return low


def _skipped(analyzer: Analyzer, model, feed: Feed) -> Result | None:
    """The skipped result of an analyzer that cannot run on this feed; None when it can."""
    if analyzer.needs_model and not feed.model_given:
        reason = NEEDS_MODEL
    elif not analyzer.supports(model, feed.first):
        reason = f"not applicable to this {model.modality} model and data"
    else:
        return None
    return Result(analyzer=analyzer.name, status="skipped", config=analyzer.config(), details={"reason": reason})


def _left_out(analyzer: Analyzer, seconds: float) -> Result:
    """The skipped result of an analyzer the budget left out: at its fewest examples it takes `seconds`."""
    return Result(analyzer=analyzer.name, status="skipped", config=analyzer.config(), details={
        "reason": f"left out by the budget: at its fewest examples it takes about {duration(seconds)}, more than the "
                  "time left"})


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
