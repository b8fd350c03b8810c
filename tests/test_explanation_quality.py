"""Explanation quality: faithfulness curves, the randomization sanity check, agreement between methods."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from explain_helpers import assert_same_state, module_state
from planted import (
    patched_digits,
    patched_digits_cnn,
    planted_case,
    trigger_lstm,
    trigger_word_reviews,
    two_feature_mlp,
    two_feature_table,
)

from audit.analyzers import ANALYZERS
from audit.analyzers.explanation_quality.analyzer import ExplanationQuality, agreement_matrix
from audit.analyzers.explanation_quality.curves import curves_of_orders, removed
from audit.analyzers.explanation_quality.sanity import cascade, cascade_stages
from audit.analyzers.explanation_quality.summary import ExplanationSummary, SanityOutcome
from audit.core.encoders import Tokenizer
from audit.core.result import Result
from audit.methods.attributions import registry
from audit.policy.gates import find_metric_spec
from audit.policy.thresholds import DEFAULT_VALUES


def input_itself(model, data, target, *, seed=0):
    """An "explanation" that ignores the model: the input as its own attribution."""
    return model.encode(data).float().numpy()


def seeded_noise(model, data, target, *, seed=0):
    """An explanation with no information: seeded noise shaped like the input."""
    return np.random.default_rng(seed).normal(size=tuple(model.encode(data).shape))


@pytest.fixture
def fake_methods(monkeypatch):
    for name, fn in (("input_itself", input_itself), ("seeded_noise", seeded_noise)):
        monkeypatch.setitem(registry._METHODS, name,
                            registry.AttributionMethod(name, fn, ("tabular", "image", "text"), name))


def quality(model, data, methods, **config):
    return ExplanationQuality(methods=methods, samples=config.pop("samples", 16), **config).run(model, data)


@pytest.mark.parametrize("kind", ["tabular", "text"])
def test_sanity_check_passes_integrated_gradients_and_flags_the_input_itself(kind, fake_methods):
    model, data = planted_case(kind)
    result = quality(model, data, ("integrated_gradients", "input_itself"))
    m = result.metrics
    assert m["explanations.integrated_gradients.sanity_passed"] == 1.0
    assert m["explanations.integrated_gradients.randomization_correlation"] < 0.5
    assert m["explanations.input_itself.sanity_passed"] == 0.0
    assert m["explanations.input_itself.randomization_correlation"] > 0.99


def test_sanity_check_on_images_flags_the_input_and_passes_saliency(fake_methods):
    result = quality(patched_digits_cnn(True), patched_digits()[2], ("saliency", "grad_cam", "input_itself"))
    m = result.metrics
    assert m["explanations.saliency.sanity_passed"] == 1.0 and m["explanations.grad_cam.sanity_passed"] == 1.0
    assert m["explanations.input_itself.sanity_passed"] == 0.0
    assert result.details["cascade"] == [["classifier.4"], ["classifier.4", "classifier.2"],
                                         ["classifier.4", "classifier.2", "features.3"],
                                         ["classifier.4", "classifier.2", "features.3", "features.0"]]
    assert list(result.tables["sanity"].columns[:4]) == [f"top {k} layers" for k in (1, 2, 3, 4)]


@pytest.mark.parametrize("kind", ["tabular", "image", "text"])
def test_faithful_attributions_beat_a_random_order_and_noise_does_not(kind, fake_methods):
    model, data = planted_case(kind)
    m = quality(model, data, ("integrated_gradients", "seeded_noise"), samples=40).metrics
    ig = "explanations.integrated_gradients"
    assert m[f"{ig}.deletion_auc"] < m[f"{ig}.random_deletion_auc"] - 0.1
    assert m[f"{ig}.insertion_auc"] > m[f"{ig}.random_insertion_auc"] + 0.1
    noise = "explanations.seeded_noise"
    assert abs(m[f"{noise}.deletion_auc"] - m[f"{noise}.random_deletion_auc"]) < 0.1
    assert abs(m[f"{noise}.insertion_auc"] - m[f"{noise}.random_insertion_auc"]) < 0.1


def test_deletion_and_insertion_curves_match_the_model_on_masked_inputs():
    model, data = two_feature_mlp(True), two_feature_table()[2].sample(5, seed=3)
    x = model.encode(data)
    scores = np.tile(np.arange(10, 0, -1, dtype=float), (5, 1))  # removal order x0, x1, ..., x9
    target = np.array([0, 1, 0, 1, 1])
    deletion, insertion = curves_of_orders(model, x, {"o": scores}, np.ones((5, 10), bool), target, 5)["o"]
    assert deletion.shape == insertion.shape == (5, 6)
    for k in range(6):
        gone = x.clone()
        gone[:, : 2 * k] = 0.0
        kept = torch.zeros_like(x)
        kept[:, : 2 * k] = x[:, : 2 * k]
        # A softmax probability's relative error is the absolute error of the logit gap: the curves score all
        # steps in one batch, a float32 logit can change in its last bit with the batch (spacing 9.5e-7 at 8..16,
        # the largest |logit| here 15.6), so two logits give up to 1.9e-6 (seen: p = 6e-13 at a gap of 28).
        # Removing one feature more or less changes the probabilities by far more than 1e-5.
        np.testing.assert_allclose(deletion[:, k], model.proba(gone)[np.arange(5), target], rtol=1e-5)
        np.testing.assert_allclose(insertion[:, k], model.proba(kept)[np.arange(5), target], rtol=1e-5)


def test_removed_tokens_become_unknown_words_and_padding_stays():
    model = trigger_lstm(True)
    texts = trigger_word_reviews()[2].sample(3).texts
    ids = model.encoder.encode(texts)
    valid = (ids != Tokenizer.PAD).numpy()
    out = removed(model, ids, valid, model.encoder.word_index(texts))
    assert (out[ids != Tokenizer.PAD] == Tokenizer.UNK).all() and (out[ids == Tokenizer.PAD] == Tokenizer.PAD).all()


def test_agreement_is_the_rank_correlation_of_top_features():
    model = two_feature_mlp(True)
    a = np.random.default_rng(0).normal(size=(6, 10))
    valid = np.ones((6, 10), dtype=bool)
    table = agreement_matrix(model, {"a": a, "same": 2 * a, "reversed": 1.0 / (np.abs(a) + 1e-3)}, valid, k=10)
    assert table.loc["a", "same"] == pytest.approx(1.0)
    assert table.loc["a", "reversed"] == pytest.approx(-1.0)
    result = quality(model, two_feature_table()[2], ("integrated_gradients", "gradient_shap"), top_k=3)
    assert result.metrics["explanations.agreement"] > 0.8
    assert result.tables["agreement"].shape == (2, 2)


def test_cascade_reinitializes_layers_of_copies_from_the_top_down():
    model = patched_digits_cnn(True)
    before = module_state(model.module)
    stages = cascade_stages(model, 2)
    assert stages == [["classifier.4", "classifier.2"], ["classifier.4", "classifier.2", "features.3", "features.0"]]
    copies = list(cascade(model, stages, seed=0))
    assert_same_state(before, module_state(model.module))
    original = dict(model.module.named_parameters())
    for layers, copy in zip(stages, copies):
        randomized = dict(copy.module.named_parameters())
        for name, p in original.items():
            changed = not torch.equal(p, randomized[name])
            assert changed == name.startswith(tuple(f"{layer}." for layer in layers)), name
    first, second = (dict(c.module.named_parameters()) for c in copies)
    assert torch.equal(first["classifier.4.weight"], second["classifier.4.weight"])  # cumulative, not redrawn
    again = dict(list(cascade(model, stages, seed=0))[0].module.named_parameters())
    assert all(torch.equal(first[n], again[n]) for n in first)


def test_same_seed_same_numbers_nothing_left_on_the_model_and_metrics_listed():
    model, data = patched_digits_cnn(True), patched_digits()[2]
    before = module_state(model.module)
    first = ExplanationQuality(samples=8, steps=8).run(model, data, seed=1)
    assert_same_state(before, module_state(model.module))
    second = ExplanationQuality(samples=8, steps=8).run(model, data, seed=1)
    assert first.metrics == second.metrics
    assert first.details["methods"] == ["integrated_gradients", "saliency", "gradient_shap", "grad_cam"]
    assert first.arrays["deletion.grad_cam"].shape == (9,)
    assert [f.title for f in first.figures] == ["Deletion and insertion curves", "Model randomization sanity check"]
    json.dumps(first.to_dict(), allow_nan=False)
    assert all(find_metric_spec(name) is not None for name in first.metrics)
    assert "explanation_quality" in ANALYZERS.defaults()
    assert list(ANALYZERS._classes).index("explanation_quality") > list(ANALYZERS._classes).index("saliency")


def judged_summary(summary) -> list:
    """The findings of a result that holds nothing but its summary: no metric, table or detail to read."""
    return list(ExplanationQuality().findings(Result(analyzer="explanation_quality", summary=summary), DEFAULT_VALUES))


def test_findings_are_read_from_the_summary_alone():
    sound = SanityOutcome("saliency", 0.1, True)
    blind = SanityOutcome("input_itself", 0.97, False)
    (sanity,) = judged_summary(ExplanationSummary(samples=16, sanity_threshold=0.5, sanity=(sound, blind)))
    assert sanity.severity == "medium" and "1 of 2" in sanity.sentence and "input itself 0.970" in sanity.sentence
    assert sanity.metrics == ("explanations.input_itself.sanity_passed",)
    (every,) = judged_summary(ExplanationSummary(samples=16, sanity_threshold=0.5, sanity=(blind,)))
    assert every.severity == "high" and every.sentence.startswith("Every explanation method fails")
    (disagree,) = judged_summary(ExplanationSummary(samples=16, sanity_threshold=0.5, sanity=(sound,), agreement=-0.2))
    assert disagree.severity == "low" and "-0.20 over 16 examples" in disagree.sentence
    assert judged_summary(ExplanationSummary(samples=16, sanity_threshold=0.5, sanity=(sound,), agreement=0.9)) == []
    assert judged_summary(ExplanationSummary(samples=16, sanity_threshold=0.5, agreement=float("nan"))) == []
