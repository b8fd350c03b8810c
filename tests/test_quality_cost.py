"""What explanation quality costs beside the saliency it checks: forward and backward rows counted on the model,
the cascade's early stop on planted correlations, and the adaptive curves against the full ones."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from planted import patched_digits, patched_digits_cnn, planted_case

from audit.analyzers.explanation_quality.analyzer import ExplanationQuality, at_absent_value, order_scores
from audit.analyzers.explanation_quality.curves import area, curves_of_orders, feature_mask
from audit.analyzers.explanation_quality.sanity import (
    attribute_copy,
    cascade,
    cascade_stages,
    copy_cost,
    decided,
    mean_rank_correlation,
    nanmedian,
    planned_stages,
    sanity_check,
)
from audit.analyzers.saliency.analyzer import SaliencyAnalyzer
from audit.methods.attributions import registry
from audit.methods.attributions.methods import attribute_all, attribution_cost
from audit.methods.attributions.sampling import explained_samples


class Rows:
    """Rows through a module's forward passes (gradients on or off) and backward passes, its copies' included.
    The hooks are plain functions: deepcopy shares them, where it would copy a bound method's object and with
    it the counts."""

    def __init__(self, module: torch.nn.Module):
        counts = self.counts = {"forward": 0, "backward": 0}

        def forward(module, args, out):
            counts["forward"] += len(args[0])

        def backward(module, grad_in, grad_out):
            counts["backward"] += len(grad_out[0])

        self.handles = [module.register_forward_hook(forward), module.register_full_backward_hook(backward)]

    def take(self) -> dict[str, int]:
        counts = dict(self.counts)
        self.counts.update({"forward": 0, "backward": 0})
        return counts

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()


def test_quality_computes_no_attribution_saliency_has_and_a_cheaper_saliency_per_stage_it_runs():
    """Each stage of the cascade costs what saliency costs on the same examples (the same methods, on a randomized
    copy) less the steps and samples the copies leave out (28 of saliency's 77 passes per example here: integrated
    gradients 16 steps of 50, GradientSHAP 10 samples of 25), the trained model's attributions nothing (saliency's
    are read); so quality's backward rows are that times the stages that ran: 3 of the 4 here, where every method
    is decided by then (before: 5 times saliency's, the trained model's attributions and 4 full stages)."""
    model, data = patched_digits_cnn(True), patched_digits()[2]
    rows = Rows(model.module)
    try:
        SaliencyAnalyzer(samples=16).run(model, data)
        saliency = rows.take()
        result = ExplanationQuality(samples=16).run(model, data)
        quality = rows.take()
    finally:
        rows.remove()
    ran = (~result.tables["sanity"].iloc[:, :4].isna()).sum(axis=1)
    assert (ran == 3).all(), result.tables["sanity"]
    methods = result.details["methods"]
    assert attribution_cost(model, tuple(methods)).backward == 77 and copy_cost(model, methods).backward == 28
    assert saliency["backward"] == 16 * 77
    assert quality["backward"] == 3 * 16 * 28
    # The plan counts the trained model's attributions (saliency's here) and the 3 stages of 4 a clear verdict takes.
    assert ExplanationQuality(samples=16).cost(model, len(data)).backward == saliency["backward"] + quality["backward"]
    curves = quality["forward"] - quality["backward"]  # without gradients: the curves (5 orders, 2 curves)
    assert 0 < curves < 5 * 2 * 21 * 16  # fewer than every point of every curve


def test_the_attributions_saliency_computed_are_read_not_computed_again():
    model, data = patched_digits_cnn(True), patched_digits()[2]
    subset = data.subset(explained_samples(model, data, 4, seed=0))
    target = model.predict(subset)
    first, _ = attribute_all(model, subset, ["saliency"], target, seed=0)
    rows = Rows(model.module)
    try:
        again, _ = attribute_all(model, subset, ["saliency"], target, seed=0)
        assert rows.take() == {"forward": 0, "backward": 0}
        other, _ = attribute_all(model, subset, ["saliency"], (target + 1) % 10, seed=0)  # other targets: computed
        assert rows.take()["backward"] == len(subset)
    finally:
        rows.remove()
    np.testing.assert_array_equal(first["saliency"], again["saliency"])
    again["saliency"][:] = 0  # a copy: the kept attributions stay as they were
    np.testing.assert_array_equal(first["saliency"], attribute_all(model, subset, ["saliency"], target, seed=0)[0][
        "saliency"])
    assert not np.array_equal(first["saliency"], other["saliency"])


# -- early stop of the cascade ---------------------------------------------------------------------


@pytest.mark.parametrize(("known", "remaining", "verdict"), [
    ([-0.5, -0.25], 2, "pass"),  # the median is at most (-0.25 + 1) / 2 whatever comes
    ([1.0, 1.0, 0.9], 1, "fail"),  # at least (0.9 + 1.0) / 2
    ([0.1, 0.2, 0.3], 1, "pass"),
    ([0.1, float("nan"), 0.3, 0.2], 0, "ran"),
    ([0.0, 0.1], 2, None),  # up to (0.1 + 1) / 2
    ([0.375, 0.5, 0.625], 1, None),  # between 0.4375 and 0.5625
    ([1.0], 3, None),
    ([float("nan"), float("nan")], 2, None),
])
def test_a_verdict_is_decided_once_no_remaining_stage_can_change_it(known, remaining, verdict):
    assert decided(known, remaining, 0.5) == (verdict is not None)
    if verdict in ("pass", "fail"):  # every completion in [-1, 1] (and undefined) gives that verdict
        rng = np.random.default_rng(0)
        for _ in range(200):
            rest = rng.choice([-1.0, 1.0, float("nan"), rng.uniform(-1, 1)], size=remaining)
            assert (nanmedian(known + list(rest)) < 0.5) == (verdict == "pass")


@pytest.mark.parametrize("stages", range(1, 7))
def test_the_planned_stages_are_those_a_clear_fail_takes_and_a_clear_pass_takes_no_more(stages):
    def fewest(value):  # stages run before `decided` holds with every correlation at `value`
        return next(k for k in range(1, stages + 1) if decided([value] * k, stages - k, 0.5))

    assert planned_stages(stages) == fewest(1.0) >= fewest(-1.0)


def features(model, data) -> int:
    return int(np.prod(model.encode(data).shape[1:]))


def planted_method(model, stages, values, calls):
    """An attribution method whose attributions at stage k of the cascade correlate `values[k]` with those of
    the trained `model` (exactly: rows equal or reversed); it records the stage of every call (None: trained)."""
    trained = {n: p.detach().clone() for n, p in model.module.named_parameters()}

    def fn(randomized, data, target, *, seed=0):
        changed = {n.rsplit(".", 1)[0] for n, p in randomized.module.named_parameters()
                   if not torch.equal(p, trained[n])}
        stage = next((k for k, layers in enumerate(stages) if set(layers) == changed), None)
        calls.append(stage)
        ranks = np.tile(np.arange(features(randomized, data), dtype=float), (len(data), 1))
        if stage is not None:
            same = round(len(data) * (1 + values[stage]) / 2)
            ranks[same:] = ranks[same:, ::-1]
        return ranks

    return fn


@pytest.mark.parametrize(("values", "stages_run", "passed"), [
    ([1.0, 1.0, 1.0, 1.0], 3, False),  # the input itself: decided after three stages
    ([0.5, 0.25, -0.25, -0.5], 2, True),  # two negative stages decide a pass
    ([0.875, 0.625, 0.5, 0.375], 4, False),  # undecided until the last stage
])
def test_the_cascade_stops_once_decided_and_gives_the_full_cascades_verdict(monkeypatch, values, stages_run, passed):
    model, data = patched_digits_cnn(True), patched_digits()[2].subset(np.arange(16))
    stages = cascade_stages(model, 4)
    assert len(stages) == 4
    calls = []
    monkeypatch.setitem(registry._METHODS, "planted", registry.AttributionMethod(
        "planted", planted_method(model, stages, values, calls), ("image",), "planted"))
    target = model.predict(data)
    trained = np.tile(np.arange(features(model, data), dtype=float), (len(data), 1))
    check = sanity_check(model, data, {"planted": trained}, target, np.ones(trained.shape, bool), stages,
                         threshold=0.5, seed=0, scores=lambda a: a)
    rhos = check.by_stage["planted"]
    assert calls == [3, 2, 1, 0][:stages_run]  # deepest first, and no stage after the verdict is decided
    np.testing.assert_allclose([r for r in rhos if not np.isnan(r)], values[::-1][:stages_run][::-1])
    assert (check.correlation["planted"] < 0.5) == passed == (np.median(values) < 0.5)


def test_on_real_models_the_early_stop_keeps_the_full_cascades_verdicts(monkeypatch):
    model, data = patched_digits_cnn(True), patched_digits()[2]
    monkeypatch.setitem(registry._METHODS, "input_itself", registry.AttributionMethod(
        "input_itself", lambda m, d, t, *, seed=0: m.encode(d).float().numpy(), ("image",), "input_itself"))
    methods = ("saliency", "integrated_gradients", "grad_cam", "input_itself")
    result = ExplanationQuality(methods=methods, samples=12, steps=4).run(model, data)
    subset = data.subset(result.arrays["samples"])
    x, target = model.encode(subset), result.arrays["targets"]
    trained, _ = attribute_all(model, subset, list(methods), target, seed=0)
    compared = feature_mask(model, x) & ~at_absent_value(model, x)
    full = {m: [] for m in methods}
    for randomized in cascade(model, cascade_stages(model, 4), seed=0):
        after, _ = attribute_copy(randomized, subset, list(methods), target, seed=0)
        for m in methods:
            full[m].append(mean_rank_correlation(order_scores(model, trained[m]), order_scores(model, after[m]),
                                                 compared))
    table = result.tables["sanity"]
    assert table.drop(columns=["randomization_correlation", "sanity_passed"]).isna().to_numpy().any()  # it stopped
    for m in methods:
        ran = table.loc[m].iloc[:4].to_numpy(dtype=float)
        np.testing.assert_allclose(ran[~np.isnan(ran)], np.asarray(full[m])[~np.isnan(ran)], atol=1e-6)
        assert result.metrics[f"explanations.{m}.sanity_passed"] == float(np.median(full[m]) < 0.5), m
    assert result.metrics["explanations.input_itself.sanity_passed"] == 0.0


# -- adaptive curves ---------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["tabular", "image", "text"])
def test_adaptive_curves_keep_the_full_curves_areas_within_half_the_tolerance(kind):
    model, data = planted_case(kind)
    subset = data.subset(explained_samples(model, data, 16, seed=0))
    x, target = model.encode(subset), model.predict(subset)
    words = model.encoder.word_index(subset.texts) if kind == "text" else None
    valid = feature_mask(model, x, words)
    attributions, _ = attribute_all(model, subset, ["integrated_gradients"], target, seed=0)
    orders = {"random": np.random.default_rng(0).random(valid.shape),
              "ig": order_scores(model, attributions["integrated_gradients"])}
    rows = Rows(model.module)
    try:
        full = curves_of_orders(model, x, orders, valid, target, 20, words=words)
        every = rows.take()["forward"]
        tolerance = 0.02
        adaptive = curves_of_orders(model, x, orders, valid, target, 20, words=words, tolerance=tolerance)
        fewer = rows.take()["forward"]
        curves_of_orders(model, x, orders, valid, target, 20, words=words, tolerance=1.0)  # never refined
        first = rows.take()["forward"]
    finally:
        rows.remove()
    for name in orders:
        for exact, quick in zip(full[name], adaptive[name]):
            assert abs(area(exact) - area(quick)) <= tolerance / 2, (name, area(exact), area(quick))
            scored = np.isclose(exact, quick, rtol=1e-5, atol=1e-7)
            assert scored[:, [0, 5, 10, 15, 20]].all()  # the first points are scored, not read off a line
    assert first < fewer < every  # refined where the curves move, not everywhere
