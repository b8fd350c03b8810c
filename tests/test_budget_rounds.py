"""A budget that spends where it matters: per-example analyzers run in nested rounds and stop once their judgement
is decided, and what one did not spend goes to the analyzers after it. The budget is counted on a fake clock that
the test analyzers advance by their own planned seconds, so no assertion depends on how fast this machine is."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
import pytest

import audit
from audit.core.analyzer import ANALYZERS, UNPROBED, Analyzer, Cost
from audit.core.result import Result
from audit.executor import loop
from audit.executor.plan import Speed, within_budget

SPEED = Speed(forward=1e-9, backward=1e-9)  # the model's passes cost nothing: the plan is the analyzers' seconds
THRESHOLD = 0.1  # error_rate_gap_max of the default policy, which the test analyzers are judged by


class FakeClock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


CLOCK = FakeClock()  # the test analyzers advance it


@pytest.fixture
def clock(monkeypatch):
    CLOCK.now = 0.0
    monkeypatch.setattr(loop, "probe", lambda model, data, analyzers: SPEED)
    monkeypatch.setattr(loop._Clock, "now", staticmethod(CLOCK))
    return CLOCK


SEEN: dict[str, list[Counter]] = {}  # per analyzer, the inputs each of its runs read


@dataclass(frozen=True, kw_only=True)
class Share(Analyzer):
    """A share whose interval is `center` +- `spread` / sqrt(examples): one second of the fake clock per example.
    Judged against THRESHOLD: decided when the interval lies on one side of it."""

    samples: int = 256
    center: float = 0.5
    spread: float = 0.5
    fixed: float = 0.0  # planned seconds besides the examples'
    pace: float = 1.0  # fake seconds a run takes per planned second of its examples

    name = "share"
    title = description = "a share"
    metric_prefix = "share"
    headline = ("share.value",)
    judged_by = "error_rate_gap_max"

    def cost(self, model, rows, *, probed=UNPROBED):
        return Cost(seconds=float(min(self.samples, rows)) + self.fixed)

    def run(self, model, data, *, seed=0):
        n = min(self.samples, len(data))
        chosen = np.random.default_rng(seed).choice(len(data), n, replace=False) if n < len(data) else range(n)
        SEEN.setdefault(self.name, []).append(Counter(data.inputs[i].tobytes() for i in chosen))
        CLOCK.now += n * self.pace
        half, metric = self.spread / n ** 0.5, self.headline[0]
        return Result(analyzer=self.name, metrics={metric: self.center}, config={"samples": self.samples},
                      intervals={metric: (self.center - half, self.center + half)}, details={"examples": n})


@dataclass(frozen=True, kw_only=True)
class Other(Share):
    name = "other"
    metric_prefix = "other"
    headline = ("other.value",)


@pytest.fixture(scope="module")
def digits():
    return audit.load_dataset("digits", "test")


def examples(run, name):
    return run.provenance["plan"]["steps"][name]["examples"]


def test_a_decided_analyzer_stops_after_its_first_round_and_the_next_gets_the_seconds_left(digits_cnn, digits,
                                                                                            clock):
    decided = Share(center=0.5)  # [0.41, 0.59] at 32 examples: above the threshold
    undecided = Other(center=THRESHOLD)  # always straddles it
    run = audit.run(digits_cnn, digits, [decided, undecided], budget=320)
    first, second = examples(run, "share"), examples(run, "other")
    assert run.provenance["plan"]["steps"]["share"]["rounds"] == [[32, pytest.approx(0.1768, abs=1e-4)]]
    assert first["stopped"] == "decided" and first["used"] == 32 and first["planned"] < 256
    assert first["interval_widening"] == pytest.approx((first["planned"] / 32) ** 0.5, abs=0.01)
    # the plan before the work gave it as few as the first; the 32 spent on the first leave it all it asks
    assert second["planned"] == first["planned"] and second["used"] == 256 and second["stopped"] == "all"
    assert run.result("other").details["examples"] == 256
    assert clock.now <= 320


def test_without_the_decided_one_the_same_budget_leaves_the_next_its_cut(digits_cnn, digits, clock):
    """The control: the first analyzer undecided too, it spends its share and the second is cut."""
    run = audit.run(digits_cnn, digits, [Share(center=THRESHOLD), Other(center=THRESHOLD)],
                    budget=320)
    first, second = examples(run, "share"), examples(run, "other")
    assert first["stopped"] == second["stopped"] == "budget"
    assert [n for n, _ in run.provenance["plan"]["steps"]["share"]["rounds"]] == [32, first["used"]]
    assert first["used"] < 256 and second["used"] < 256
    assert clock.now <= 320


def test_an_undecided_analyzer_goes_on_to_its_cut_and_says_the_budget_stopped_it(digits_cnn, digits, clock):
    run = audit.run(digits_cnn, digits, [Share(center=THRESHOLD)], budget=200)
    step = run.provenance["plan"]["steps"]["share"]
    cut = int(step["cut"].split("-> ")[1].split()[0])  # the plan before the work: 256 -> cut examples
    assert cut < 256 and [n for n, _ in step["rounds"]] == [32, cut]
    assert step["examples"] == {"planned": cut, "used": cut, "stopped": "budget", "interval_widening": 1.0}
    assert run.result("share").details["examples"] == cut
    assert clock.now <= 200


def test_a_budget_that_fits_ends_where_the_judgement_is_decided_or_all_examples_are_used(digits_cnn, digits,
                                                                                         clock):
    run = audit.run(digits_cnn, digits, [Share(center=0.5), Other(center=THRESHOLD)],
                    budget=10_000)
    assert examples(run, "share") == {"planned": 256, "used": 32, "stopped": "decided", "interval_widening": 2.83}
    assert examples(run, "other")["stopped"] == "all"
    assert [n for n, _ in run.provenance["plan"]["steps"]["other"]["rounds"]] == [32, 256]


def test_without_a_budget_an_analyzer_runs_once_and_nothing_is_recorded(digits_cnn, digits, clock):
    run = audit.run(digits_cnn, digits, [Share(center=0.5)])
    assert run.result("share").details["examples"] == 256 and clock.now == 256
    assert "examples" not in run.provenance["plan"]["steps"]["share"]


def test_rounds_are_nested_and_grow_so_that_all_read_less_than_twice_the_last(digits_cnn, digits, clock):
    SEEN.clear()
    run = audit.run(digits_cnn, digits, [Share(center=0.5, spread=4.0)], precision=0.3)
    sizes = [n for n, _ in run.provenance["plan"]["steps"]["share"]["rounds"]]
    assert sizes == [32, 64, 128, 256] and sum(sizes) < 2 * sizes[-1]
    seen = SEEN["share"]
    assert [s.total() for s in seen] == sizes
    assert all(not earlier - later for earlier, later in zip(seen, seen[1:]))  # each round's inputs in the next's
    assert examples(run, "share")["stopped"] == "all"


def test_a_first_round_that_has_all_the_examples_is_the_only_run(digits_cnn, digits, clock):
    SEEN.clear()
    run = audit.run(digits_cnn, digits, [Share(samples=20, center=THRESHOLD)], precision=0.01,
                    budget=10_000)
    assert len(SEEN["share"]) == 1 and "rounds" not in run.provenance["plan"]["steps"]["share"]
    assert examples(run, "share") == {"planned": 20, "used": 20, "stopped": "all", "interval_widening": 1.0}


CHEAP_ATTACKS = {"samples": 128, "sweep": (1.0,), "steps": 2, "apgd_steps": 0, "square_queries": 1,
                 "flip_refine": 0}


def test_robustness_in_rounds_gives_the_numbers_of_one_run_on_its_last_rounds_examples(digits_cnn, digits):
    options = {**CHEAP_ATTACKS, "epsilon": 0.05}
    run = audit.run(digits_cnn, digits, [ANALYZERS.create("robustness", **options)], precision=0.25)
    rounds = run.provenance["plan"]["steps"]["robustness"]["rounds"]
    n = rounds[-1][0]
    assert len(rounds) > 1 and n < 128  # stopped early: a run on the last round's examples is not the default run
    result = run.result("robustness")
    rows = result.examples.index.to_numpy()
    assert len(rows) == n
    alone = ANALYZERS.create("robustness", **{**options, "samples": n}).run(digits_cnn, digits.subset(rows), seed=0)
    assert alone.metrics == result.metrics


def test_robustness_is_decided_when_the_kept_shares_interval_clears_the_threshold(digits_cnn, digits):
    robustness = ANALYZERS.create("robustness", **CHEAP_ATTACKS, epsilon=1.0)  # breaks every example
    result = robustness.run(digits_cnn, digits, seed=0)
    assert result.summary.kept == 0.0
    assert robustness.decided(result, {"robust_accuracy_ratio_min": 0.5})
    assert not robustness.decided(result, {"robust_accuracy_ratio_min": 0.01})  # its interval reaches above 0.01


def test_the_report_and_the_cli_say_what_each_analyzer_used_and_why_it_stopped(digits_cnn, digits, clock, capsys,
                                                                                tmp_path):
    run = audit.run(digits_cnn, digits, [Share(center=0.5), Other(center=THRESHOLD)], budget=320)
    err = capsys.readouterr().err
    assert "share used 32 of 131 planned examples, stopped: its interval lies wholly on one side" in err
    assert "other used 256 of 131 planned examples, stopped: it has all its examples" in err
    run.save_html(tmp_path / "r.html")
    page = " ".join((tmp_path / "r.html").read_text().split())
    assert "examples: 32 used of 131 planned, stopped: decided (intervals about 2x as wide as planned)" in page
    assert "examples: 256 used of 131 planned, stopped: all (intervals about 0.72x as wide as planned)" in page


def test_a_budget_below_the_fewest_examples_leaves_out_the_longest_analyzer(digits_cnn, digits, clock):
    cheap, dear = Share(samples=8), Other(fixed=10.0)  # at their fewest (4 examples) 4 s and 14 s
    fitted, plan = within_budget(digits_cnn, SPEED, [cheap, dear], rows=len(digits), budget=10)
    assert plan.dropped == {"other": 14.0} and plan.seconds <= 10 and len(fitted) == 2
    assert "leaves out other" in "\n".join(plan.lines())
    with pytest.raises(audit.AuditInputError, match="too small"):  # never every per-example analyzer
        within_budget(digits_cnn, SPEED, [cheap, dear], rows=len(digits), budget=3)
    assert within_budget(digits_cnn, SPEED, [cheap, dear], rows=len(digits), budget=20)[1].dropped == {}

    run = audit.run(digits_cnn, digits, [cheap, dear], budget=10)
    assert run.result("other").status == "skipped"
    assert "left out by the budget" in run.result("other").details["reason"]
    assert run.result("share").status == "ok" and run.provenance["plan"]["dropped"] == {"other": 14.0}


def test_an_analyzer_left_out_before_the_work_runs_when_those_before_it_leave_it_the_time(digits_cnn, digits, clock):
    fast, dear = Share(samples=8, pace=0.1), Other(fixed=10.0)  # the first takes 0.8 s of its planned 8 s
    run = audit.run(digits_cnn, digits, [fast, dear], budget=16)  # the fewest examples of both: 18 s
    assert run.provenance["plan"]["dropped"] == {"other": 14.0}
    assert run.result("other").status == "ok" and run.result("other").details["examples"] >= 4
    assert clock.now <= 16
    control = audit.run(digits_cnn, digits, [Share(samples=8), Other(fixed=10.0)], budget=16)
    assert control.result("other").status == "skipped"


def test_where_a_first_round_does_not_fit_the_analyzer_runs_once_on_what_does(digits_cnn, digits, clock):
    run = audit.run(digits_cnn, digits, [Share(center=THRESHOLD)], budget=20)
    step = run.provenance["plan"]["steps"]["share"]
    assert "rounds" not in step and 4 < step["examples"]["used"] == step["examples"]["planned"] <= 20
    assert step["examples"]["stopped"] == "budget" and clock.now <= 20
