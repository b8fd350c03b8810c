"""The plan of an audit, made before the work: what each analyzer will ask of the model, and how long that takes.

A probe times the model on a few examples of the data (after a warm-up): seconds per example forward, and
forward and back to the input. Every analyzer states its passes from its own settings (`Analyzer.cost`); the
plan prices them, with the prediction pass over the whole data, and the ETA is their sum. The run records the
plan beside the seconds each analyzer really took, so a report shows how well it predicted. A budget cuts the
analyzers' examples until the plan fits (`within_budget`); the executor plans again what is left before each
per-example analyzer, and records what each used of its plan (`Used`).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from audit._util.errors import AuditInputError
from audit._util.durations import duration
from audit.core.analyzer import UNPROBED, Analyzer, Cost, Probed
from audit.core.dataset import Dataset
from audit.core.passes import rows_per_pass

PROBE_ROWS = 32  # examples per timed pass: a batch as the analyzers' own passes are
PROBE_SECONDS = 0.05  # each timing repeats until it has taken this long (at least REPEATS times)
REPEATS = 3
PROBE_MOST = 1.0  # seconds after which a timing stops repeating: the probe's time counts against a budget
PREDICT = "predict"  # the plan's step for the prediction pass over the whole data
SHRINK = 0.8  # a budget cuts every analyzer's examples by this factor at a time until the plan fits


@dataclass(frozen=True)
class Speed:
    """Seconds per example of the model: `forward` without a gradient, `backward` forward and back; `load`: how
    much slower than its CPU time the probe ran (other processes on the cores), which the analyzers' own work
    (`Cost.seconds`, CPU seconds of an idle core) is slowed by too; `probed`: what the analyzers' costs read of the
    probed examples (the share the model gets right, which the attacks are planned on, and their pilots)."""

    forward: float
    backward: float
    load: float = 1.0
    probed: Probed = UNPROBED

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


STOPS = {  # why a per-example analyzer stopped adding examples, as its record says it
    "decided": "its interval lies wholly on one side of the policy's threshold",
    "precise": "its interval is as narrow as the precision asked",
    "budget": "the budget's time",
    "all": "it has all its examples",
    "error": "it failed",
}


@dataclass(frozen=True)
class Used:
    """What one per-example analyzer used of its plan: the `planned` examples (of the plan made before the work),
    the `used` ones (its last round, or its one run), and why it stopped adding them (a key of STOPS); its intervals
    are about sqrt(planned / used) as wide as at the planned examples (below 1: narrower, with seconds that an
    analyzer before it did not spend)."""

    name: str
    planned: int
    used: int
    stopped: str

    @property
    def widening(self) -> float:
        return math.sqrt(self.planned / self.used) if self.used else math.inf

    def line(self) -> str:
        return (f"{self.name} used {self.used} of {self.planned} planned examples, stopped: {STOPS[self.stopped]} "
                f"(intervals about {self.widening:.2g}x as wide as planned)")

    def to_dict(self) -> dict:
        return {"planned": self.planned, "used": self.used, "stopped": self.stopped,
                "interval_widening": round(self.widening, 2)}


@dataclass(frozen=True)
class Plan:
    speed: Speed
    steps: tuple[Step, ...]
    budget: float | None = None
    cuts: tuple[Cut, ...] = ()
    dropped: dict[str, float] = dataclasses.field(default_factory=dict)  # left out: seconds at their fewest examples

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
            out += [f"plan: budget {duration(self.budget)} leaves out {name}: about {duration(seconds)} at its "
                    f"fewest examples" for name, seconds in self.dropped.items()]
            out += [f"plan: budget {duration(self.budget)} cuts {cut.line()}" for cut in self.cuts] or \
                   ([] if self.dropped else [f"plan: budget {duration(self.budget)}: nothing cut"])
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
            **({"dropped": {name: round(seconds, 3) for name, seconds in self.dropped.items()}}
               if self.dropped else {}),
            "steps": {s.name: {"forward": round(s.cost.forward), "backward": round(s.cost.backward),
                               "planned_seconds": round(s.seconds, 3),
                               **({"actual_seconds": round(actual[s.name], 3)} if s.name in actual else {}),
                               **({"cut": cuts[s.name].line(), "interval_widening": round(cuts[s.name].widening, 2)}
                                  if s.name in cuts else {})}
                      for s in self.steps},
        }


def make_plan(model, speed: Speed, analyzers: Sequence[Analyzer], *, rows: int, predicted: bool = False) -> Plan:
    """The plan of `analyzers` on data of `rows` rows (a streamed run's analyzers read a sample of it), after the
    prediction pass over them (`predicted`: that pass is done, as when the executor re-plans what is left)."""
    costs = [] if predicted else [(PREDICT, Cost(forward=rows))]
    costs += [(a.name, a.cost(model, rows, probed=speed.probed)) for a in analyzers]
    return Plan(speed, tuple(Step(name, cost, speed.seconds(cost)) for name, cost in costs))


def within_budget(model, speed: Speed, analyzers: Sequence[Analyzer], *, rows: int, budget: float,
                  predicted: bool = False, spent: float = 0.0) -> tuple[list[Analyzer], Plan]:
    """`analyzers` with their examples cut by one share, the largest whose plan fits `budget` seconds (less those
    `spent` already, as on the probe), and that plan. Where even the fewest examples do not fit, the per-example
    analyzers that take longest at their fewest are left out (the plan's `dropped`; their place in the list keeps
    them at the fewest) until the rest fits; AuditInputError when the prediction pass and the analyzers without
    examples alone do not, or only one per-example analyzer would be left, and not even it fits."""
    original, asked, budget = list(analyzers), budget, budget - spent
    dropped = _dropped(model, speed, original, rows=rows, budget=budget, asked=asked, predicted=predicted)
    kept = [a for a in original if a.name not in dropped]
    floor = [a.scaled(model, rows, 0.0).sample_size(model, rows) for a in kept]
    share, fitted = 1.0, kept
    plan = make_plan(model, speed, fitted, rows=rows, predicted=predicted)
    while plan.seconds > budget and [a.sample_size(model, rows) for a in fitted] != floor:
        share *= SHRINK
        fitted = [a.scaled(model, rows, share) for a in kept]
        plan = make_plan(model, speed, fitted, rows=rows, predicted=predicted)
    cuts = tuple(Cut(a.name, before, after, a.headlines(model))
                 for a, b in zip(fitted, kept)
                 if (before := b.sample_size(model, rows)) > (after := a.sample_size(model, rows)))
    by_name = {a.name: a for a in fitted}
    return ([by_name.get(a.name) or a.scaled(model, rows, 0.0) for a in original],
            dataclasses.replace(plan, budget=asked, cuts=cuts, dropped=dropped))


def _dropped(model, speed: Speed, analyzers: list[Analyzer], *, rows: int, budget: float, asked: float,
             predicted: bool) -> dict[str, float]:
    """The per-example analyzers a budget leaves out, with their planned seconds at their fewest examples: the
    longest first, until the plan of the rest at their fewest fits; never the last of them (a budget that would
    leave none is refused)."""
    least = make_plan(model, speed, [a.scaled(model, rows, 0.0) for a in analyzers], rows=rows, predicted=predicted)
    seconds = {a.name: least.planned(a.name) for a in analyzers if a.sample_size(model, rows)}
    dropped, total = {}, least.seconds
    for name in sorted(seconds, key=seconds.get, reverse=True)[:-1]:
        if total <= budget:
            break
        dropped[name], total = seconds[name], total - seconds[name]
    if total > budget:
        predicting = least.planned(PREDICT)
        total += asked - budget  # with what was spent before the plan (the probe)
        at_least = duration(total) + (f", {duration(predicting)} of it predicting {rows:,} rows" if predicting else "")
        raise AuditInputError(f"budget {duration(asked)} is too small for this audit: the least it can do "
                              f"takes about {at_least}; give a larger budget, fewer analyzers or fewer rows")
    return dropped


def checked_precision(precision: float | None) -> float | None:
    """A precision target: an interval width in (0, 1); AuditInputError for anything else."""
    if precision is not None and (isinstance(precision, bool) or not isinstance(precision, (int, float))
                                  or not 0 < precision < 1):
        raise AuditInputError(f"precision {precision!r}: expected an interval width between 0 and 1, e.g. 0.1")
    return None if precision is None else float(precision)


def probe(model, data: Dataset, analyzers: Sequence[Analyzer] = ()) -> Speed | None:
    """Seconds per example of `model` on a batch of PROBE_ROWS rows spread evenly over `data` (repeated where it
    has fewer, fewer where the memory budget says), forward without a gradient and forward and back to the input
    (the embedding's output for text), its accuracy on them and the `analyzers`' pilots of them; None when the
    model fails on them (the prediction pass then says why, in its words)."""
    if not len(data):
        return None
    probed = data.subset(np.unique(np.linspace(0, len(data) - 1, min(len(data), PROBE_ROWS)).astype(int)))
    began, cpu = time.perf_counter(), time.process_time()
    devices = [model.device] if model.device.type == "cuda" else []
    # A model random at inference draws numbers: the audit's draws stay as seeded.
    with torch.random.fork_rng(devices=devices):
        try:
            x = model.encode(probed)  # bad input too is the prediction pass's to name, with the data's own rows
            rows = rows_per_pass(model, x, rows=PROBE_ROWS, backward=True, what="the plan's probe")
            x = x[torch.arange(rows) % len(x)].to(model.device)
            with torch.no_grad():
                forward = _timed(lambda: model.module(x)) / len(x)
            backward = _timed(lambda: _input_gradient(model, x)) / len(x)
            accuracy = float(np.mean(model.predict(probed) == model.labels(probed)))
        except Exception:  # noqa: BLE001 - no plan; the prediction pass reports the model's or the data's failure
            return None
        load = (time.perf_counter() - began) / max(time.process_time() - cpu, 1e-9)
        pilots = {a.name: pilot for a in analyzers if (pilot := _pilot(a, model, probed)) is not None}
    return Speed(forward, backward, max(1.0, load), Probed(accuracy, pilots))


def _pilot(analyzer: Analyzer, model, probed: Dataset) -> object | None:
    try:
        return analyzer.pilot(model, probed)
    except Exception:  # noqa: BLE001 - the analyzer's run reports its own failure; its plan goes without a pilot
        return None


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
    interrupted by other work, as timeit's documentation reasons); fewer once they have taken PROBE_MOST seconds,
    as a slow model's calls each take long enough to average the interruptions out."""
    work()
    times = []
    began = time.perf_counter()
    while len(times) < REPEATS or (time.perf_counter() - began < PROBE_SECONDS and len(times) < 50):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
        if time.perf_counter() - began >= PROBE_MOST:
            break
    return min(times)


def _passes(cost: Cost) -> str:
    parts = [f"{cost.forward:,.0f} forward"] if cost.forward else []
    parts += [f"{cost.backward:,.0f} backward"] if cost.backward else []
    return " + ".join(parts) or "no model passes"
