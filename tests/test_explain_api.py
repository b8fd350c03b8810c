"""`audit.explain` and the captum methods: planted ground truth, equality with captum, contract."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from captum.attr import (
    DeepLift,
    GradientShap,
    IntegratedGradients,
    LayerGradCam,
    LayerGradientXActivation,
    LayerIntegratedGradients,
    Occlusion,
    Saliency,
)
from explain_helpers import assert_same_state, module_state
from planted import (
    INFORMATIVE,
    TRIGGER,
    patch_share,
    patched_class_images,
    patched_digits,
    patched_digits_cnn,
    trigger_lstm,
    trigger_word_reviews,
    two_feature_mlp,
    two_feature_table,
)

import audit
from audit.methods.attributions import list_methods
from audit.core.encoders import ENCODERS
from audit._util.errors import AuditInputError
from audit.methods.attributions.explain import explain
from audit.core.model import Task, trim_padding
from audit.models.registry import MODELS, list_models

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:captum")

CAPTUM = ("integrated_gradients", "saliency", "gradient_shap", "deeplift", "occlusion")


def top_token_is_trigger(model: audit.Model, data: audit.Dataset, method: str) -> float:
    """Share of the texts holding the trigger whose top |attribution| token is the trigger."""
    ids = model.encode(data).numpy()
    trigger = model.encoder.vocab.index(TRIGGER)
    holds = (ids == trigger).any(axis=1)
    top = ids[np.arange(len(ids)), np.abs(explain(model, data, method)).argmax(axis=1)]
    return float((top == trigger)[holds].mean())


def global_ranking(model: audit.Model, data: audit.Dataset, method: str) -> list[int]:
    return list(np.argsort(-np.abs(explain(model, data, method)).mean(axis=0)))


# -- planted ground truth, each with its control ------------------------------------------


@pytest.mark.parametrize("method", ["integrated_gradients", "gradient_shap"])
def test_attribution_mass_falls_on_the_planted_patch(method):
    images = patched_class_images(16)
    assert patch_share(explain(patched_digits_cnn(True), images, method)).mean() > 0.5
    # Control: a model trained without the patch, on the same patched images.
    assert patch_share(explain(patched_digits_cnn(False), images, method)).mean() < 0.25


@pytest.mark.parametrize("method", CAPTUM)
def test_trigger_word_is_the_top_token(method):
    test = trigger_word_reviews()[2].sample(80, seed=0)
    assert top_token_is_trigger(trigger_lstm(True), test, method) >= 0.9
    control = trigger_word_reviews(planted=False)[2].sample(80, seed=0)
    assert top_token_is_trigger(trigger_lstm(False), control, method) < 0.2


@pytest.mark.parametrize("method", CAPTUM)
def test_the_two_label_features_rank_first_and_second(method):
    ranking = global_ranking(two_feature_mlp(True), two_feature_table()[2], method)
    assert set(ranking[:2]) == set(INFORMATIVE)
    control = global_ranking(two_feature_mlp(False), two_feature_table(planted=False)[2], method)
    assert control[0] == 0 and set(control[:2]) != set(INFORMATIVE)


# -- equal to captum called directly -----------------------------------------------------


def _direct(model, x, t, method):
    forward = model.module
    if method == "integrated_gradients":
        return IntegratedGradients(forward).attribute(x, baselines=torch.zeros_like(x), target=t, n_steps=50)
    if method == "saliency":
        return Saliency(forward).attribute(x, target=t)
    if method == "deeplift":
        return DeepLift(forward).attribute(x, baselines=torch.zeros_like(x), target=t)
    if method == "gradient_shap":
        torch.manual_seed(5)
        np.random.seed(5)
        return GradientShap(forward).attribute(x, baselines=torch.zeros_like(x[:1]), target=t, n_samples=25,
                                               stdevs=0.1)
    if method == "occlusion":
        return Occlusion(forward).attribute(x, sliding_window_shapes=(1, 2, 2), strides=(1, 1, 1), baselines=0.0,
                                            target=t)
    # Grad-CAM's layer: the rectified last convolution, i.e. the end of `features`
    cam = LayerGradCam(forward, model.module.features).attribute(x, target=t, relu_attributions=True)
    return torch.nn.functional.interpolate(cam, size=x.shape[-2:], mode="bilinear", align_corners=False)


@pytest.mark.parametrize("method", [*CAPTUM, "grad_cam"])
def test_image_attributions_equal_captum_called_directly(method):
    model, images = patched_digits_cnn(True), patched_class_images(8)
    target = np.arange(8) % 10
    ours = explain(model, images, method, target=target, seed=5)
    x = model.encode(images)
    direct = _direct(model, x, torch.as_tensor(target), method).detach().numpy()
    atol = 1e-6
    if method == "occlusion":
        # Each value is a mean of logit(x) - logit(occluded) over the windows covering the pixel; we score many
        # windows per forward pass, captum here one, and a float32 logit can change in its last bits with the batch
        # (seen: 1 to 2 spacings of the largest |logit|, 1.9e-6 at 16..32, on values that are exactly 0 in one
        # and not the other). 4 spacings (7.6e-6 here); a window shifted by a pixel, a stride of 2, a window of 3
        # or another target class move values by 1 or more.
        with torch.no_grad():
            atol = 4 * float(np.spacing(model.module(x).abs().max().numpy()))
    np.testing.assert_allclose(ours, direct, rtol=1e-4, atol=atol)


def test_table_attributions_equal_captum_called_directly():
    model, rows = two_feature_mlp(True), two_feature_table()[2].sample(20, seed=1)
    target = model.predict(rows)
    ours = explain(model, rows, "integrated_gradients", n_steps=32)
    direct = IntegratedGradients(model.module).attribute(
        model.encode(rows), baselines=torch.zeros(1, 10), target=torch.as_tensor(target), n_steps=32)
    np.testing.assert_allclose(ours, direct.detach().numpy(), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("method", ["integrated_gradients", "saliency"])
def test_token_attributions_equal_captum_at_the_embedding(method):
    model, texts = trigger_lstm(True), trigger_word_reviews()[2].sample(12, seed=2)
    target = torch.as_tensor(model.predict(texts))
    ids = trim_padding(model.encode(texts))
    if method == "integrated_gradients":
        direct = LayerIntegratedGradients(model.module, model.embedding).attribute(
            ids, baselines=torch.zeros_like(ids), target=target)
    else:
        direct = LayerGradientXActivation(model.module, model.embedding).attribute(ids, target=target)
    direct = direct.sum(-1).masked_fill(ids == 0, 0.0).detach().numpy()
    ours = explain(model, texts, method)
    assert ours.shape == (12, model.encoder.max_length)
    np.testing.assert_allclose(ours[:, : ids.shape[1]], direct, rtol=1e-4, atol=1e-6)
    assert not ours[:, ids.shape[1]:].any()


# -- contract: nothing left behind, deterministic -----------------------------------------


@pytest.mark.parametrize("kind", ["image", "text", "tabular"])
def test_methods_leave_no_hooks_gradients_or_weight_changes(kind):
    model, data = {
        "image": (patched_digits_cnn(True), patched_class_images(4)),
        "text": (trigger_lstm(True), trigger_word_reviews()[2].sample(4)),
        "tabular": (two_feature_mlp(True), two_feature_table()[2].sample(4)),
    }[kind]
    before = module_state(model.module)
    torch_rng, numpy_rng = torch.get_rng_state(), np.random.get_state()[1].copy()
    for method in list_methods(model.modality):
        if method in CAPTUM or method == "grad_cam":
            explain(model, data, method)
    assert_same_state(before, module_state(model.module))
    assert torch.equal(torch_rng, torch.get_rng_state())
    assert np.array_equal(numpy_rng, np.random.get_state()[1])
    assert not model.module.training


@pytest.mark.parametrize("architecture", list_models())
def test_every_method_runs_on_every_architecture(architecture):
    """Untrained models of each registered architecture: shapes, zero at padding, nothing left behind."""
    modality = MODELS.get(architecture).modalities[0]
    splits = {"tabular": two_feature_table, "image": patched_digits, "text": trigger_word_reviews}[modality]()
    encoder = ENCODERS[modality].fit(splits[0])
    torch.manual_seed(0)
    module = MODELS.create(architecture, **encoder.input_config(splits[0]), num_classes=len(splits[0].classes))
    model = audit.Model(module, Task(modality=modality, classes=splits[0].classes, encoder=encoder))
    data = splits[2].sample(3, seed=0)
    before = module_state(model.module)
    for method in list_methods(modality):
        if method in CAPTUM or method == "grad_cam":
            attributions = explain(model, data, method)
            assert attributions.shape == (3, *model.encode(data).shape[1:]), method
            assert np.isfinite(attributions).all(), method
            if modality == "text":
                assert not attributions[model.encode(data).numpy() == 0].any(), method
    assert_same_state(before, module_state(model.module))


def test_sampling_methods_are_deterministic_under_a_seed():
    model, images = patched_digits_cnn(True), patched_class_images(6)
    first = explain(model, images, "gradient_shap", seed=3)
    np.testing.assert_array_equal(first, explain(model, images, "gradient_shap", seed=3))
    assert not np.allclose(first, explain(model, images, "gradient_shap", seed=4))


# -- the API ------------------------------------------------------------------------------


def test_target_none_explains_the_predicted_class_and_an_int_or_array_picks_classes():
    model, images = patched_digits_cnn(True), patched_class_images(6)
    predicted = model.predict(images)
    np.testing.assert_array_equal(explain(model, images), explain(model, images, target=predicted))
    np.testing.assert_array_equal(explain(model, images, target=7), explain(model, images, target=np.full(6, 7)))
    assert not np.allclose(explain(model, images, target=7), explain(model, images, target=predicted))


def test_raw_inputs_are_explained_like_a_dataset():
    lstm, texts = trigger_lstm(True), trigger_word_reviews()[2].sample(5)
    np.testing.assert_array_equal(explain(lstm, texts), explain(lstm, list(texts.texts)))
    mlp, rows = two_feature_mlp(True), two_feature_table()[2].sample(5)
    np.testing.assert_array_equal(explain(mlp, rows, "saliency"), explain(mlp, rows.inputs, "saliency"))
    cnn, images = patched_digits_cnn(True), patched_class_images(3)
    np.testing.assert_array_equal(explain(cnn, images), explain(cnn, images.inputs[:, 0]))


def test_every_registered_method_is_reachable_through_explain():
    assert set(CAPTUM) <= set(list_methods("text")) and "grad_cam" in list_methods("image")
    assert "grad_cam" not in list_methods("tabular")


@pytest.mark.parametrize("call, message", [
    (lambda m, d: explain(m, d, "no_such_method"), "unknown attribution method 'no_such_method'"),
    (lambda m, d: explain(m, d, "grad_cam"), "does not support tabular models"),
    (lambda m, d: explain(m, d, "integrated_gradients", steps=3), "has no option(s) steps; options: n_steps"),
    (lambda m, d: explain(m, d, target=2), "target classes must be in 0..1"),
    (lambda m, d: explain(m, d, target=np.zeros(2, dtype=int)), "one integer per example (5)"),
    (lambda m, d: explain(m, d, target=0.5), "target must be a class index"),
    (lambda m, d: explain(m, np.zeros((5, 10))), "explain needs a Dataset or a DataFrame"),
    (lambda m, d: explain(m, d.subset(np.array([], dtype=int))), "no examples to explain"),
])
def test_bad_calls_raise_one_clear_error(call, message):
    model, rows = two_feature_mlp(True), two_feature_table()[2].sample(5)
    with pytest.raises(AuditInputError) as info:
        call(model, rows)
    assert message in str(info.value)


def test_grad_cam_without_a_convolution_says_so():
    images = patched_class_images(2)
    flat = audit.wrap(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10)), modality="image",
                      classes=images.classes)
    with pytest.raises(AuditInputError, match="grad_cam needs a convolutional network"):
        explain(flat, images, "grad_cam")
