"""SHAP: ground truth with controls, equality with shap called directly, determinism, contract."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import shap
import torch
from explain_helpers import no_hooks_left
from planted import (INFORMATIVE, PATCH_CLASS, patch_share, patched_class_images, patched_digits, patched_digits_cnn,
                     texts_with_trigger, trigger_is_top, trigger_lstm, trigger_word_reviews, two_feature_mlp,
                     two_feature_table)
from torch import nn

import audit
from audit.analyzers.shap_values.analyzer import Shap
from audit.methods.attributions import get_method
from audit.methods.attributions import shap_method
from audit.methods.attributions.sampling import stratified_sample
from audit.methods.attributions.shap_method import explain_shap
from audit.core.encoders import Tokenizer
from audit._util.errors import AuditInputError
from audit.policy.gates import Policy
from audit.executor.runner import AuditRun


@pytest.mark.parametrize("planted", [True, False])
def test_patch_holds_most_shap_mass_only_when_planted(planted):
    model = patched_digits_cnn(planted)
    train, _, test = patched_digits(planted=planted)
    images = patched_class_images()
    explanation = explain_shap(model, images, seed=0, background=train.sample(100, seed=0))
    assert (explanation.target == PATCH_CLASS).mean() > 0.9
    share = patch_share(explanation.values).mean()
    # the patch is 4 of 64 pixels
    assert share > 0.5 if planted else share < 0.3


@pytest.mark.parametrize("planted", [True, False])
def test_trigger_word_is_the_top_shap_token_only_when_planted(planted):
    model = trigger_lstm(planted)
    data = texts_with_trigger(10)
    explanation = explain_shap(model, data, seed=0, max_evals=200)
    top = trigger_is_top(model, data, explanation.values).mean()
    assert top > 0.9 if planted else top < 0.2
    assert explanation.additivity_error.max() < 1e-5


@pytest.mark.parametrize("planted", [True, False])
def test_two_informative_columns_rank_first_in_the_shap_analyzer(planted):
    model = two_feature_mlp(planted)
    result = Shap(samples=32).run(model, two_feature_table(planted=planted)[2], seed=0)
    top = list(result.tables["importance"].index[:2])
    informative = {f"x{i}" for i in INFORMATIVE}
    if planted:
        assert set(top) == informative
    else:
        assert top[0] == "x0" and set(top) != informative
    assert result.metrics["shap.additivity_error"] < 1e-4
    assert result.details["explainer"] == "DeepExplainer"


def test_shap_values_equal_deep_explainer_called_directly():
    model = patched_digits_cnn(True)
    data = patched_digits()[2].subset(np.arange(6))
    background = patched_digits()[0].sample(50, seed=1)
    ours = explain_shap(model, data, seed=0, background=background)
    bg, x = model.encode(background), model.encode(data)
    direct = shap.DeepExplainer(copy.deepcopy(model.module), bg).shap_values(x)  # every class: (N, C, H, W, classes)
    expected = np.stack([direct[i, ..., c] for i, c in enumerate(ours.target)])
    np.testing.assert_allclose(ours.values, expected, rtol=1e-5, atol=1e-6)
    assert ours.additivity_error.max() < 1e-4


def test_packed_rows_equal_deep_explainer_called_directly(monkeypatch):
    # 3 instances per DeepExplainer row: 7 rows make 3 packed rows, the last padded.
    monkeypatch.setattr(shap_method, "PACKED_ROWS", 2 * 20 * 3)
    model = two_feature_mlp(True)
    train, _, test = two_feature_table()
    data, background = test.subset(np.arange(7)), train.sample(20, seed=1)
    ours = explain_shap(model, data, target=1, seed=0, background=background)
    explainer = shap.DeepExplainer(copy.deepcopy(model.module), model.encode(background))
    direct = explainer.shap_values(model.encode(data))  # (N, features, classes)
    np.testing.assert_allclose(ours.values, direct[..., 1], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(ours.base_values, explainer.expected_value[1], rtol=1e-6)
    assert ours.explainer == "DeepExplainer" and ours.additivity_error.max() < 1e-5


def direct_permutation_shap(model, ids: np.ndarray, target: int, *, seed: int, max_evals: int):
    """shap's PermutationExplainer over the first `n` token positions of one padded row of `ids`,
    a hidden token becoming the unknown-word token: (values, base value)."""
    n = int((ids != Tokenizer.PAD).sum())

    def hide(mask, _positions):
        return np.where(np.append(mask, np.ones(len(ids) - n, bool)), ids, Tokenizer.UNK)[None]

    def score(rows):
        return model.proba(torch.as_tensor(rows, dtype=torch.long))[:, target]

    explainer = shap.PermutationExplainer(score, hide, seed=seed)
    direct = explainer(np.arange(n)[None], max_evals=max(max_evals, 2 * n + 1), silent=True)
    return direct.values[0], float(np.asarray(direct.base_values).reshape(-1)[0])


def test_token_shap_values_equal_the_permutation_explainer_called_directly(monkeypatch):
    # 3 texts of about 200 masked rows each: the first two are scored in one batch, the third in another
    monkeypatch.setattr(shap_method, "TEXT_ROWS", 300)
    model = trigger_lstm(True)
    data = texts_with_trigger(3)
    ours = explain_shap(model, data, target=1, seed=3, max_evals=200)
    for i, ids in enumerate(model.encode(data).numpy()):
        values, base = direct_permutation_shap(model, ids, 1, seed=3, max_evals=200)
        np.testing.assert_allclose(ours.values[i, : len(values)], values, atol=1e-7)
        np.testing.assert_allclose(ours.base_values[i], base, atol=1e-7)
        assert not ours.values[i, len(values):].any()


class PaddingMean(nn.Module):
    """A text classifier whose output depends on the padding too: a mean over every position."""

    def __init__(self, vocab: int):
        super().__init__()
        torch.manual_seed(0)
        self.embedding = nn.Embedding(vocab, 8)
        self.head = nn.Linear(8, 2)

    def forward(self, ids):
        return self.head(torch.tanh(self.embedding(ids)).mean(dim=1))


def test_token_shap_values_add_up_to_the_probability_of_a_model_that_reads_the_padding():
    data = texts_with_trigger(4)
    tokenizer = Tokenizer.fit(data, min_count=1, max_length=24)
    model = audit.wrap(PaddingMean(len(tokenizer.vocab)), modality="text", classes=["plain", "trigger"],
                       tokenizer=tokenizer)
    ids = model.encode(data)
    assert ((ids == Tokenizer.PAD).sum(dim=1) > 0).all()
    ours = explain_shap(model, data, target=1, seed=0, max_evals=60)
    hidden = torch.where(ids == Tokenizer.PAD, ids, Tokenizer.UNK)
    all_hidden = model.proba(hidden)[:, 1]
    np.testing.assert_allclose(ours.outputs, model.proba(ids)[:, 1])
    np.testing.assert_allclose(ours.base_values, all_hidden, atol=1e-7)
    assert ours.additivity_error.max() < 1e-6
    values, base = direct_permutation_shap(model, ids[0].numpy(), 1, seed=0, max_evals=60)
    np.testing.assert_allclose(ours.values[0, : len(values)], values, atol=1e-7)


def test_unsupported_layer_falls_back_to_gradient_explainer_and_says_so():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 8), nn.SiLU(), nn.Linear(8, 2))  # DeepExplainer has no rule for SiLU
    names = ["a", "b", "c", "d"]
    model = audit.wrap(net, modality="tabular", classes=["no", "yes"], feature_names=names)
    x = np.random.default_rng(0).normal(size=(40, 4))
    data = audit.Dataset.from_arrays(x, (x[:, 0] > 0).astype(int), feature_names=names)
    before = copy.deepcopy(net.state_dict())
    first = explain_shap(model, data, seed=5, background=20, pool=data)
    assert first.explainer == "GradientExplainer"
    assert "DeepExplainer failed" in first.warnings[0]
    np.testing.assert_array_equal(first.values, explain_shap(model, data, seed=5, background=20, pool=data).values)
    assert no_hooks_left(net)
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())


def test_registered_method_returns_input_shaped_values():
    model = trigger_lstm(True)
    data = texts_with_trigger(2)
    values = get_method("shap").fn(model, data, None, seed=0)
    assert values.shape == (2, model.encoder.max_length)


@pytest.mark.parametrize("make", [lambda: (patched_digits_cnn(True), patched_digits()[2]),
                                  lambda: (trigger_lstm(True), trigger_word_reviews()[2])],
                         ids=["cnn", "lstm"])
def test_analyzer_is_deterministic_and_leaves_the_model_untouched(make):
    model, data = make()
    grads = [p.requires_grad for p in model.module.parameters()]
    state = copy.deepcopy(model.module.state_dict())
    first = Shap(samples=4).run(model, data, seed=1)
    second = Shap(samples=4).run(model, data, seed=1)
    np.testing.assert_array_equal(first.arrays["values"], second.arrays["values"])
    assert first.metrics == second.metrics
    json.dumps(first.to_dict(), allow_nan=False)
    assert len(first.figures) == 2
    assert no_hooks_left(model.module)
    assert [p.requires_grad for p in model.module.parameters()] == grads
    assert all(torch.equal(state[k], v) for k, v in model.module.state_dict().items())


def wrapped_patch_cnn() -> audit.Model:
    """The planted patch CNN as a user's own module: it names no training split."""
    model = patched_digits_cnn(True)
    return audit.wrap(model.module, modality="image", classes=model.classes)


def test_a_patch_every_explained_image_shares_gets_its_shap_mass():
    model = wrapped_patch_cnn()
    images = patched_class_images()  # every one carries the patch that decides its class
    mixed = patched_digits()[2]
    # The defect: against the explained rows themselves, the shared patch gets (next to) nothing.
    alone = explain_shap(model, images, seed=0, background=images)
    assert patch_share(alone.values).mean() < 0.05
    with pytest.raises(AuditInputError, match="background="):
        audit.explain(model, images, "shap")  # no training split, no background: refused, not made up
    for background in (mixed.inputs, mixed, torch.from_numpy(mixed.inputs)):  # raw array, Dataset, tensor
        values = audit.explain(model, images, "shap", background=background)
        assert patch_share(values).mean() >= 0.3


def test_the_analyzer_draws_its_background_from_the_audited_data_across_classes():
    model = wrapped_patch_cnn()
    test = patched_digits()[2]
    result = Shap(samples=40).run(model, test, seed=0)
    assert "drawn across its classes" in result.details["background"]
    rows = result.arrays["rows"]
    patched = test.labels[rows] == PATCH_CLASS
    assert patched.sum() >= 2
    assert patch_share(result.arrays["values"][patched]).mean() >= 0.3
    given = Shap(samples=4, background=test.subset(np.arange(30))).run(model, test, seed=0)
    assert given.details["background"] == "30 given background rows"
    assert given.config["background"] == "30 given rows"
    json.dumps(given.to_dict(), allow_nan=False)


def test_stratified_sample_keeps_class_shares_and_every_class():
    labels = np.repeat([0, 1, 2], [900, 90, 10])
    chosen = stratified_sample(labels, 100, seed=0)
    assert np.abs(np.bincount(labels[chosen]) - [90, 9, 1]).max() <= 1
    assert len(np.unique(labels[stratified_sample(labels, 3, seed=1)])) == 3
    np.testing.assert_array_equal(chosen, stratified_sample(labels, 100, seed=0))
    assert not np.array_equal(chosen, stratified_sample(labels, 100, seed=1))


def test_additivity_error_is_reported_only_for_explainers_that_promise_it():
    # SiLU has no DeepExplainer rule: expected gradients stand in, whose values need not add up to the
    # output, so no additivity error is reported for a gate to fail.
    torch.manual_seed(0)
    names = ["a", "b", "c", "d"]
    silu = audit.wrap(nn.Sequential(nn.Linear(4, 8), nn.SiLU(), nn.Linear(8, 2)), modality="tabular",
                      classes=["no", "yes"], feature_names=names)
    x = np.random.default_rng(0).normal(size=(60, 4))
    fallback = Shap(samples=4, background=20).run(silu, audit.Dataset.from_arrays(x, (x[:, 0] > 0).astype(int),
                                                                                  feature_names=names), seed=0)
    assert fallback.details["explainer"] == "GradientExplainer"
    assert "shap.additivity_error" not in fallback.metrics and "shap.top_feature_share" in fallback.metrics
    assert "does not promise" in fallback.details["additivity"]
    run = AuditRun(model={"path": "m.pt", "architecture": "mlp", "modality": "tabular"}, data={"name": "table"},
                   results=(fallback,), verdict=audit.Verdict("ungated"))
    gate = {"shap.additivity_error": {"max": 1e-3, "if_applicable": True}}
    assert [g.status for g in Policy.from_dict({"gates": gate}).evaluate(run).gates] == ["n/a"]

    plain = Shap(samples=8, background=20).run(two_feature_mlp(True), two_feature_table()[2], seed=0)
    assert plain.details["explainer"] == "DeepExplainer"
    assert plain.metrics["shap.additivity_error"] < 1e-4 and "additivity" not in plain.details
