"""The plan made before an audit: its pass counts against the passes the analyzers really make, the ETA printed
before the work, and the budget that cuts examples to fit."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass

import pytest

import audit
from audit.analyzers.robustness import analyzer as robustness_module
from audit.cli import main
from audit.core.analyzer import ANALYZERS, Analyzer
from audit.core.model import Model
from audit.core.result import Result
from audit.executor import loop
from audit.executor.plan import Speed, make_plan, probe, within_budget
from masked import Noisy
from pass_counter import counting

SMALL = {  # every per-example analyzer, configured to run in a second on the test models
    "saliency": {"samples": 4},
    "shap": {"samples": 3, "background": 10},
    "lime": {"samples": 3, "num_samples": 60},
    "explanation_quality": {"samples": 3, "steps": 4, "cascade_stages": 2},
}


def counted(model, data, analyzer):
    model.predict_proba(data)  # the executor's prediction pass, cached: not the analyzer's
    with counting(model.module) as passes:
        result = analyzer.run(model, data, seed=0)
    assert result.status == "ok", result.error
    return passes


def close(planned: float, actual: int, tolerance: float) -> bool:
    return abs(planned - actual) <= tolerance * max(actual, 1)


@pytest.mark.parametrize("name", list(SMALL))
def test_planned_passes_match_the_passes_made_on_images(digits_cnn, name):
    data = audit.load_dataset("digits", "test")
    analyzer = ANALYZERS.create(name, **SMALL[name])
    cost = analyzer.cost(digits_cnn, len(data))
    passes = counted(digits_cnn, data, analyzer)
    # Grad-CAM's gradient stops at the last convolution, which the counter (at the first layer) does not see.
    assert close(cost.backward, passes.backward, 0.05), (cost, passes)
    assert close(cost.forward, passes.forward, 0.25), (cost, passes)


@pytest.mark.parametrize("name", ["saliency", "lime", "explanation_quality"])
def test_planned_passes_match_the_passes_made_on_tables(adult_mlp, name):
    data = audit.load_dataset("adult", "test").sample(300, seed=0)
    analyzer = ANALYZERS.create(name, **SMALL[name])
    cost = analyzer.cost(adult_mlp, len(data))
    passes = counted(adult_mlp, data, analyzer)
    assert close(cost.backward, passes.backward, 0.05), (cost, passes)
    assert close(cost.forward, passes.forward, 0.25), (cost, passes)


def test_planned_robustness_passes_bracket_the_passes_made(digits_cnn, monkeypatch):
    """Which examples survive FGSM and PGD is known only after: with none surviving the plan is a floor of
    what the attacks do, with all surviving a ceiling."""
    data = audit.load_dataset("digits", "test")
    analyzer = ANALYZERS.create("robustness", samples=12, sweep=(0.5, 1.0, 2.0), steps=3, apgd_steps=2,
                                apgd_targets=1, square_queries=10, flip_refine=1)
    passes = counted(digits_cnn, data, analyzer)
    bounds = []
    for share in (0.0, 1.0):
        monkeypatch.setattr(robustness_module, "SURVIVING", share)
        bounds.append(analyzer.cost(digits_cnn, len(data)))
    assert bounds[0].backward * 0.95 <= passes.backward <= bounds[1].backward * 1.05, (bounds, passes)
    assert bounds[0].forward * 0.8 <= passes.forward <= bounds[1].forward * 1.2, (bounds, passes)


def test_more_samples_plan_proportionally_more_passes(digits_cnn):
    few, many = (ANALYZERS.create("saliency", samples=n).cost(digits_cnn, 500) for n in (4, 16))
    assert many.backward == pytest.approx(4 * few.backward)
    capped = ANALYZERS.create("saliency", samples=16).cost(digits_cnn, 5)  # the data has only 5 rows
    assert capped.backward == pytest.approx(few.backward * 5 / 4)


def test_probe_measures_a_slower_model_as_slower(digits_cnn):
    data = audit.load_dataset("digits", "test")
    fast = probe(digits_cnn, data)
    wide = audit.wrap(torch_wide(), modality="image", classes=list(digits_cnn.classes), device="cpu")
    slow = probe(wide, data)
    assert slow.forward > 3 * fast.forward and slow.backward > 3 * fast.backward
    assert fast.backward > fast.forward


def torch_wide():
    from torch import nn

    return nn.Sequential(nn.Conv2d(1, 256, 3, padding=1), nn.ReLU(), nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(),
                         nn.Flatten(), nn.Linear(256 * 64, 10))


def test_the_plan_and_eta_are_printed_before_the_work_and_recorded(capsys, tmp_path, digits_checkpoint):
    out = tmp_path / "r.json"
    code = main(["report", str(digits_checkpoint), "-o", str(tmp_path / "r.html"), "--json", str(out),
                 "--analyzers", "performance,saliency", "--set", "saliency.samples=4"])
    err = capsys.readouterr().err
    assert code == 0
    assert "plan: ETA" in err and err.index("plan: ETA") < err.index("audit 1/2")
    assert "audit 1/2: performance" in err and "left" in err.split("audit 1/2")[1].splitlines()[0]
    plan = json.loads(out.read_text())["provenance"]["plan"]
    assert set(plan["steps"]) == {"predict", "performance", "saliency"}
    assert plan["steps"]["saliency"]["backward"] > 0 and plan["steps"]["saliency"]["actual_seconds"] > 0
    assert "planned s" in (tmp_path / "r.html").read_text()


def test_quiet_prints_no_plan(capsys, tmp_path, digits_checkpoint):
    code = main(["report", str(digits_checkpoint), "-o", str(tmp_path / "r.html"), "--quiet",
                 "--analyzers", "performance"])
    assert code == 0 and "plan:" not in capsys.readouterr().err


@pytest.fixture
def digits_checkpoint(tmp_path, digits_cnn):
    path = tmp_path / "digits.pt"
    audit.save_model(digits_cnn, path)
    return path


# -- the budget ------------------------------------------------------------------------------


SPEED = Speed(forward=1e-3, backward=3e-3)  # a slow model, so that the plan's seconds are the passes'


def test_a_budget_cuts_examples_until_the_plan_fits(digits_cnn):
    analyzers = [ANALYZERS.create("performance"), ANALYZERS.create("saliency", samples=32),
                 ANALYZERS.create("lime", samples=10)]
    full = make_plan(digits_cnn, SPEED, analyzers, rows=500)
    fitted, plan = within_budget(digits_cnn, SPEED, analyzers, rows=500, budget=full.seconds / 2)
    assert full.seconds / 3 < plan.seconds <= full.seconds / 2
    assert fitted[0] is analyzers[0]  # counts, not examples: nothing to cut
    assert fitted[1].samples < 32 and fitted[2].samples < 10
    cut = {c.name: c for c in plan.cuts}
    assert set(cut) == {"saliency", "lime"}
    assert cut["saliency"].before == 32 and cut["saliency"].after == fitted[1].samples
    assert cut["saliency"].widening == pytest.approx((32 / fitted[1].samples) ** 0.5)


def test_a_budgets_cut_names_the_headline_metrics_the_model_has(digits_cnn, reviews_lstm):
    """Robustness's interval is a robust accuracy on images and tables, a synonym attack's success rate on texts:
    a cut names only the one the model's run gives."""
    robustness = [ANALYZERS.create("robustness", samples=64)]
    for model, has, lacks in ((digits_cnn, "robust_accuracy", "text_attack"), (reviews_lstm, "text_attack",
                                                                              "robust_accuracy")):
        plan = within_budget(model, SPEED, robustness, rows=500,
                             budget=make_plan(model, SPEED, robustness, rows=500).seconds / 4)[1]
        line = plan.cuts[0].line()
        assert f"robustness.{has}" in line and f"robustness.{lacks}" not in line, line


def test_a_budget_that_fits_cuts_nothing(digits_cnn):
    analyzers = [ANALYZERS.create("saliency", samples=8)]
    full = make_plan(digits_cnn, SPEED, analyzers, rows=500)
    fitted, plan = within_budget(digits_cnn, SPEED, analyzers, rows=500, budget=full.seconds * 2)
    assert fitted == analyzers and plan.cuts == ()


def test_the_run_reports_what_the_budget_cut(digits_cnn, monkeypatch):
    monkeypatch.setattr(loop, "probe", lambda model, data, analyzers: SPEED)  # the same plan on every run
    data = audit.load_dataset("digits", "test")
    unlimited = audit.run(digits_cnn, data, ["saliency"], options={"saliency": {"samples": 64}})
    planned = unlimited.provenance["plan"]["steps"]["saliency"]["planned_seconds"]
    run = audit.run(digits_cnn, data, ["saliency"], options={"saliency": {"samples": 64}},
                    budget=unlimited.provenance["plan"]["seconds"] - planned / 2)
    step = run.provenance["plan"]["steps"]["saliency"]
    assert run.result("saliency").details["samples"] < 64
    assert step["interval_widening"] > 1 and "64 ->" in step["cut"]
    assert step["planned_seconds"] < planned


def test_a_budget_too_small_for_anything_is_one_line(capsys, tmp_path, digits_checkpoint):
    code = main(["report", str(digits_checkpoint), "-o", str(tmp_path / "r.html"), "--budget", "0.001s",
                 "--analyzers", "saliency"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and "too small for this audit" in err[-1] and "Traceback" not in "\n".join(err)


@pytest.mark.parametrize("text", ["5 parsecs", "-5m", "0", "m"])
def test_a_bad_budget_is_one_line(capsys, tmp_path, digits_checkpoint, text):
    code = main(["report", str(digits_checkpoint), "-o", str(tmp_path / "r.html"), f"--budget={text}"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "is not a duration" in err and len(err.splitlines()) == 1


@pytest.mark.parametrize(("text", "seconds"), [("90", 90), ("90s", 90), ("5m", 300), ("1h", 3600),
                                               ("1m30s", 90), ("2.5 min", 150)])
def test_durations(text, seconds):
    from audit._util.durations import parse_duration

    assert parse_duration(text) == seconds


# -- precision ---------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Proportion(Analyzer):
    """A share of examples with its interval, about `spread` / sqrt(examples) wide: an easy case has a small
    spread, a hard one a large."""

    samples: int = 256
    spread: float = 1.0

    name = "proportion"
    title = description = "a share"
    metric_prefix = "proportion"
    headline = ("proportion.share",)

    def run(self, model, data, *, seed=0):
        n = min(self.samples, len(data))
        half = self.spread / 2 / n ** 0.5
        return Result(analyzer=self.name, metrics={"proportion.share": 0.5}, intervals={
            "proportion.share": (0.5 - half, 0.5 + half)}, details={"examples": n}, config=self.config())


@pytest.mark.parametrize(("spread", "examples"), [(0.5, [32]), (1.0, [32, 64, 128]), (4.0, [32, 64, 128, 256])])
def test_precision_adds_examples_only_while_the_interval_is_too_wide(digits_cnn, spread, examples):
    data = audit.load_dataset("digits", "train")
    run = audit.run(digits_cnn, data, [Proportion(spread=spread)], precision=0.1)
    assert [n for n, _ in run.provenance["plan"]["steps"]["proportion"]["rounds"]] == examples
    assert run.result("proportion").details["examples"] == examples[-1]


def test_without_precision_all_examples_are_used(digits_cnn):
    run = audit.run(digits_cnn, audit.load_dataset("digits", "train"), [Proportion(spread=0.5)])
    assert run.result("proportion").details["examples"] == 256
    assert "rounds" not in run.provenance["plan"]["steps"]["proportion"]


CHEAP_ATTACKS = {"samples": 128, "sweep": (1.0,), "steps": 2, "apgd_steps": 0, "square_queries": 1,
                 "flip_refine": 0}


def test_robustness_stops_early_where_its_robust_accuracy_is_decided(digits_cnn):
    """A huge epsilon breaks every example: the robust accuracy's interval is narrow early. A tiny one leaves
    most examples standing, and the interval around a share near the clean accuracy stays wider longer."""
    data = audit.load_dataset("digits", "test")
    easy = audit.run(digits_cnn, data, [ANALYZERS.create("robustness", epsilon=1.0, **CHEAP_ATTACKS)],
                     precision=0.1)
    hard = audit.run(digits_cnn, data, [ANALYZERS.create("robustness", epsilon=0.01, **CHEAP_ATTACKS)],
                     precision=0.1)
    assert easy.metrics["robustness.robust_accuracy"] == 0.0
    assert 0.3 < hard.metrics["robustness.robust_accuracy"] < 1.0
    easy_rounds = easy.provenance["plan"]["steps"]["robustness"]["rounds"]
    hard_rounds = hard.provenance["plan"]["steps"]["robustness"]["rounds"]
    assert easy_rounds[-1][0] < 128 and easy_rounds[-1][1] <= 0.1
    assert hard_rounds[-1][0] == 128


@pytest.mark.parametrize("precision", [0, 1.5, "wide"])
def test_a_bad_precision_is_refused(digits_cnn, precision):
    with pytest.raises(audit.AuditInputError, match="expected an interval width"):
        audit.run(digits_cnn, audit.load_dataset("digits", "test"), ["performance"], precision=precision)


def test_robustness_is_planned_on_the_examples_the_model_gets_right(digits_cnn, monkeypatch):
    """The attacks work only on correctly classified examples: the probe measures the model's accuracy on rows
    spread over the data, and the plan prices the attacks on that share."""
    data = audit.load_dataset("digits", "test")
    wrong = dataclasses.replace(data, labels=(data.labels + 1) % len(data.classes))  # every row mislabelled
    analyzer = ANALYZERS.create("robustness", samples=12, sweep=(0.5, 1.0, 2.0), steps=3, apgd_steps=2,
                                apgd_targets=1, square_queries=10, flip_refine=1)
    right, mislabelled = probe(digits_cnn, data), probe(digits_cnn, wrong)
    assert right.probed.accuracy > 0.8 and mislabelled.probed.accuracy < 0.2, (right, mislabelled)
    plans = [make_plan(digits_cnn, speed, [analyzer], rows=len(data)).steps[1].cost for speed in (right, mislabelled)]
    passes = counted(digits_cnn, wrong, analyzer)
    assert plans[1].backward < 0.25 * plans[0].backward, plans
    assert close(plans[1].backward, passes.backward, 0.5) or plans[1].backward <= 50, (plans[1], passes)


PILOTED = dict(sweep=(0.5, 1.0, 2.0), steps=10, apgd_steps=5, apgd_targets=2, square_queries=50, flip_refine=2)


def test_the_pilot_plans_the_attacks_close_to_the_passes_made(digits_cnn):
    """Where each example breaks decides what the attacks cost: at epsilon 0.3 all break at the first epsilon of
    the sweep in a few steps, at 0.02 most survive every step and the ensemble. The pilot (PGD with a few steps
    on the probe's correct rows) plans both within 30% of the passes made; the prior it replaces, a fixed share
    surviving each epsilon, plans one of them more than twice too high."""
    data = audit.load_dataset("digits", "test")
    prior_miss = []
    for epsilon in (0.02, 0.3):
        analyzer = ANALYZERS.create("robustness", epsilon=epsilon, **PILOTED)
        probed = probe(digits_cnn, data, [analyzer]).probed
        planned = analyzer.cost(digits_cnn, len(data), probed=probed)
        prior = analyzer.cost(digits_cnn, len(data), probed=dataclasses.replace(probed, pilots={}))
        passes = counted(digits_cnn, data, analyzer)
        assert close(planned.backward, passes.backward, 0.3), (epsilon, planned, passes)
        assert close(planned.forward, passes.forward, 0.3), (epsilon, planned, passes)
        prior_miss.append(prior.backward / passes.backward)
    assert max(prior_miss) > 2, prior_miss


def test_a_model_random_at_inference_is_planned_with_its_draws(digits_cnn):
    """Each attack pass of a model random at inference is `draws` passes, and PGD takes every step on it."""
    noisy = Model(Noisy(digits_cnn.module), digits_cnn.task)
    data = audit.load_dataset("digits", "test")
    analyzer = ANALYZERS.create("robustness", samples=32, **PILOTED)
    probed = probe(noisy, data, [analyzer]).probed
    assert probed.pilots["robustness"].draws == analyzer.draws
    planned = analyzer.cost(noisy, len(data), probed=probed)
    passes = counted(noisy, data, analyzer)
    assert close(planned.backward, passes.backward, 0.3), (planned, passes)
