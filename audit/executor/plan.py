"""The plan of an audit, made before the work: what each analyzer will ask of the model, and how long that takes.

A probe times the model on a few examples of the data (after a warm-up): seconds per example forward, and
forward and back to the input. Every analyzer states its passes from its own settings (`Analyzer.cost`); the
plan prices them, with the prediction pass over the whole data, and the ETA is their sum. The run records the
plan beside the seconds each analyzer really took, so a report shows how well it predicted.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from audit._util.errors import AuditInputError
from audit._util.durations import duration
from audit.core.analyzer import Analyzer, Cost
from audit.core.dataset import Dataset
from audit.methods.memory import rows_per_pass

PROBE_ROWS = 32  # examples per timed pass: a batch as the analyzers' own passes are
PROBE_SECONDS = 0.05  # each timing repeats until it has taken this long (at least REPEATS times)
REPEATS = 3
PREDICT = "predict"  # the plan's step for the prediction pass over the whole data
SHRINK = 0.8  # a budget cuts every analyzer's examples by this factor at a time until the plan fits


@dataclass(frozen=True)
class Speed:
    """Seconds per example of the model: `forward` without a gradient, `backward` forward and back; `load`: how
    much slower than its CPU time the probe ran (other processes on the cores), which the analyzers' own work
    (`Cost.seconds`, CPU seconds of an idle core) is slowed by too."""

    forward: float
    backward: float
    load: float = 1.0

    def seconds(self, cost: Cost) -> float:
        return cost.forward * self.forward + cost.backward * self.backward + cost.seconds * self.load


@dataclass(frozen=True)
class Step:
    name: str
    cost: Cost
    seconds: float


@dataclass(frozen=True)
class Cut:
    """What a budget cut of one analyzer: its examples from `before` to `after`; its intervals widen by about
    sqrt(before / after), the width of an interval on a mean going as 1 / sqrt(examples)."""

    name: str
    before: int
    after: int
    headline: tuple[str, ...]

    @property
    def widening(self) -> float:
        return math.sqrt(self.before / self.after)

    def line(self) -> str:
        of = f" ({', '.join(self.headline)})" if self.headline else ""
        return (f"{self.name} {self.before} -> {self.after} examples, intervals{of} about {self.widening:.1f}x "
                "wider")


@dataclass(frozen=True)
class Plan:
    speed: Speed
    steps: tuple[Step, ...]
    budget: float | None = None
    cuts: tuple[Cut, ...] = ()

    @property
    def seconds(self) -> float:
        return sum(s.seconds for s in self.steps)

    def planned(self, name: str) -> float | None:
        return next((s.seconds for s in self.steps if s.name == name), None)

    def lines(self) -> list[str]:
        """What the CLI shows before the work starts: one line per step, what a budget cut, then the ETA."""
        out = [f"plan: {self.speed.forward * 1e3:.3g} ms per example forward, {self.speed.backward * 1e3:.3g} ms "
               "forward and back (probed)"]
        for s in self.steps:
            out.append(f"plan: {s.name:<20} {_passes(s.cost):<36} ~{duration(s.seconds)}")
        if self.budget is not None:
            out += [f"plan: budget {duration(self.budget)} cuts {cut.line()}" for cut in self.cuts] or \
                   [f"plan: budget {duration(self.budget)}: nothing cut"]
        out.append(f"plan: ETA {duration(self.seconds)}")
        return out

    def to_dict(self, actual: dict[str, float] | None = None) -> dict:
        """The plan as the run's document records it: per step its passes and planned seconds, and the actual
        seconds where `actual` has them; the budget and what it cut."""
        actual = actual or {}
        cuts = {c.name: c for c in self.cuts}
        return {
            "seconds_per_example": {"forward": self.speed.forward, "backward": self.speed.backward},
            "load": round(self.speed.load, 2),
            "seconds": round(self.seconds, 3),
            **({"budget_seconds": self.budget} if self.budget is not None else {}),
            "steps": {s.name: {"forward": round(s.cost.forward), "backward": round(s.cost.backward),
                               "planned_seconds": round(s.seconds, 3),
                               **({"actual_seconds": round(actual[s.name], 3)} if s.name in actual else {}),
                               **({"cut": cuts[s.name].line(), "interval_widening": round(cuts[s.name].widening, 2)}
                                  if s.name in cuts else {})}
                      for s in self.steps},
        }


def make_plan(model, speed: Speed, analyzers: Sequence[Analyzer], *, rows: int) -> Plan:
    """The plan of `analyzers` on data of `rows` rows (a streamed run's analyzers read a sample of it), after the
    prediction pass over them."""
    costs = [(PREDICT, Cost(forward=rows))] + [(a.name, a.cost(model, rows)) for a in analyzers]
    return Plan(speed, tuple(Step(name, cost, speed.seconds(cost)) for name, cost in costs))


def within_budget(model, speed: Speed, analyzers: Sequence[Analyzer], *, rows: int,
                  budget: float) -> tuple[list[Analyzer], Plan]:
    """`analyzers` with their examples cut by one share, the largest whose plan fits `budget` seconds, and that
    plan; AuditInputError when even the fewest examples do not fit."""
    original = list(analyzers)
    floor = [a.scaled(model, rows, 0.0).sample_size(model, rows) for a in original]
    share, fitted = 1.0, original
    plan = make_plan(model, speed, fitted, rows=rows)
    while plan.seconds > budget:
        if [a.sample_size(model, rows) for a in fitted] == floor:
            predicting = plan.planned(PREDICT)
            least = duration(plan.seconds) + (f", {duration(predicting)} of it predicting {rows:,} rows"
                                              if predicting else "")
            raise AuditInputError(f"budget {duration(budget)} is too small for this audit: the least it can do "
                                  f"takes about {least}; give a larger budget, fewer analyzers or fewer rows")
        share *= SHRINK
        fitted = [a.scaled(model, rows, share) for a in original]
        plan = make_plan(model, speed, fitted, rows=rows)
    cuts = tuple(Cut(a.name, before, after, a.headline)
                 for a, b in zip(fitted, original)
                 if (before := b.sample_size(model, rows)) > (after := a.sample_size(model, rows)))
    return fitted, dataclasses.replace(plan, budget=budget, cuts=cuts)


def checked_precision(precision: float | None) -> float | None:
    """A precision target: an interval width in (0, 1); AuditInputError for anything else."""
    if precision is not None and (isinstance(precision, bool) or not isinstance(precision, (int, float))
                                  or not 0 < precision < 1):
        raise AuditInputError(f"precision {precision!r}: expected an interval width between 0 and 1, e.g. 0.1")
    return None if precision is None else float(precision)


def probe(model, data: Dataset) -> Speed | None:
    """Seconds per example of `model` on a batch of `data`'s first rows (repeated up to PROBE_ROWS, fewer where
    the memory budget says), forward without a gradient and forward and back to the input (the embedding's output
    for text); None when the model fails on them (the prediction pass then says why, in its words)."""
    if not len(data):
        return None
    x = model.encode(data.subset(list(range(min(len(data), PROBE_ROWS)))))
    began, cpu = time.perf_counter(), time.process_time()
    devices = [model.device] if model.device.type == "cuda" else []
    # A model random at inference draws numbers: the audit's draws stay as seeded.
    with torch.random.fork_rng(devices=devices):
        try:
            rows = rows_per_pass(model, x, rows=PROBE_ROWS, backward=True, what="the plan's probe")
            x = x[torch.arange(rows) % len(x)].to(model.device)
            with torch.no_grad():
                forward = _timed(lambda: model.module(x)) / len(x)
            backward = _timed(lambda: _input_gradient(model, x)) / len(x)
        except Exception:  # noqa: BLE001 - no plan; the prediction pass reports the model's failure
            return None
    load = (time.perf_counter() - began) / max(time.process_time() - cpu, 1e-9)
    return Speed(forward, backward, max(1.0, load))


def _input_gradient(model, x: torch.Tensor) -> None:
    if x.is_floating_point():
        x = x.detach().requires_grad_(True)
        torch.autograd.grad(model.module(x).sum(), x)
        return
    captured = []

    def keep(_module, _args, out):
        captured.append(out)

    layer = model.embedding
    handle = layer.register_forward_hook(keep) if layer is not None else None
    try:
        out = model.module(x).sum()
        wrt = captured or [p for p in model.module.parameters() if p.requires_grad][:1]
        if wrt and out.requires_grad:
            torch.autograd.grad(out, wrt)
    finally:
        if handle is not None:
            handle.remove()


def _timed(work) -> float:
    """Seconds of one call of `work`: the fastest of REPEATS or more calls after one warm-up (a slower call was
    interrupted by other work, as timeit's documentation reasons)."""
    work()
    times = []
    began = time.perf_counter()
    while len(times) < REPEATS or (time.perf_counter() - began < PROBE_SECONDS and len(times) < 50):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return min(times)


def _passes(cost: Cost) -> str:
    parts = [f"{cost.forward:,.0f} forward"] if cost.forward else []
    parts += [f"{cost.backward:,.0f} backward"] if cost.backward else []
    return " + ".join(parts) or "no model passes"
