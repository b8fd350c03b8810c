"""LIME: ground truth with controls, equality with lime called directly, seeding, contract."""

from __future__ import annotations

import copy
import json

import numpy as np
import pandas as pd
import pytest
import torch
from lime.lime_image import LimeImageExplainer
from lime.lime_tabular import LimeTabularExplainer
from lime.lime_text import LimeTextExplainer
from explain_helpers import no_hooks_left
from planted import (INFORMATIVE, PATCH_CLASS, patch_share, patched_class_images, patched_digits, patched_digits_cnn,
                     texts_with_trigger, trigger_is_top, trigger_lstm, two_feature_mlp, two_feature_table)

import audit
from audit.analyzers.lime_weights.analyzer import Lime
from audit.methods.attributions import get_method
from audit.methods.attributions.lime_batch import distinct_rows
from audit.methods.attributions.lime_method import TRAINING_ROWS, RawColumns, explain_lime, grid_segments
from audit.core.encoders import TabularEncoder


@pytest.mark.parametrize("planted", [True, False])
def test_patch_holds_most_lime_mass_only_when_planted(planted):
    explanation = explain_lime(patched_digits_cnn(planted), patched_class_images(12), seed=0, num_samples=500)
    assert (explanation.target == PATCH_CLASS).mean() > 0.9
    share = patch_share(explanation.values).mean()
    assert share > 0.5 if planted else share < 0.3


@pytest.mark.parametrize("planted", [True, False])
def test_trigger_word_is_the_top_lime_token_only_when_planted(planted):
    model = trigger_lstm(planted)
    data = texts_with_trigger()
    top = trigger_is_top(model, data, explain_lime(model, data, seed=0, num_samples=500).values).mean()
    assert top > 0.9 if planted else top < 0.2


@pytest.mark.parametrize("planted", [True, False])
def test_two_informative_columns_rank_first_in_the_lime_analyzer(planted):
    result = Lime(samples=10, num_samples=500).run(two_feature_mlp(planted), two_feature_table(planted=planted)[2])
    top = list(result.tables["importance"].index[:2])
    informative = {f"x{i}" for i in INFORMATIVE}
    if planted:
        assert set(top) == informative
    else:
        assert top[0] == "x0" and set(top) != informative
    assert result.metrics["lime.mean_fit_r2"] > 0.5


@pytest.mark.parametrize("make", [lambda: (patched_digits_cnn(True), patched_class_images(3)),
                                  lambda: (trigger_lstm(True), texts_with_trigger(3)),
                                  lambda: (two_feature_mlp(True), two_feature_table()[2].subset(np.arange(3)))],
                         ids=["image", "text", "table"])
def test_one_seed_gives_identical_weights_and_another_seed_does_not(make):
    model, data = make()
    first = explain_lime(model, data, seed=7, num_samples=300)
    np.testing.assert_array_equal(first.values, explain_lime(model, data, seed=7, num_samples=300).values)
    assert not np.array_equal(first.values, explain_lime(model, data, seed=8, num_samples=300).values)


def test_image_weights_equal_lime_called_directly():
    model = patched_digits_cnn(True)
    data = patched_class_images(2)
    ours = explain_lime(model, data, seed=3, num_samples=400)
    segments = grid_segments(8, 8)
    for image, label, weights in zip(data.inputs, ours.target, ours.local):
        explainer = LimeImageExplainer(feature_selection="none", random_state=3)
        direct = explainer.explain_instance(  # lime's default batch of 10 images per call
            image.transpose(1, 2, 0).astype(np.float64),
            lambda batch: model.predict_proba(torch.tensor(batch.transpose(0, 3, 1, 2), dtype=torch.float32)),
            labels=(int(label),), hide_color=0.0, top_labels=None, num_features=16, num_samples=400,
            segmentation_fn=lambda _: segments)
        np.testing.assert_allclose(weights, [w for _, w in sorted(direct.local_exp[int(label)])], atol=1e-6)
    # each segment's weight is spread over its 2x2 pixels
    np.testing.assert_allclose(ours.values[0, 0, 6:, 6:].sum(), ours.local[0][15])


def test_text_weights_equal_lime_called_directly():
    model = trigger_lstm(True)
    data = texts_with_trigger(2)
    ours = explain_lime(model, data, seed=4, num_samples=300)
    for i, text in enumerate(data.texts):
        tokens = model.encoder.tokens(text)
        explainer = LimeTextExplainer(split_expression=" ", bow=False, feature_selection="none", random_state=4)
        direct = explainer.explain_instance(" ".join(tokens), lambda t: model.predict_proba(list(t)),
                                            labels=(int(ours.target[i]),), num_features=len(tokens), num_samples=300)
        expected = np.zeros(model.encoder.max_length)
        for position, weight in direct.local_exp[int(ours.target[i])]:
            expected[position] = weight
        np.testing.assert_allclose(ours.values[i], expected, atol=1e-8)


def test_batched_text_fits_equal_lime_called_directly():
    # Texts of one length share lime's masks; short ones repeat perturbations, which are scored once.
    model = trigger_lstm(True)
    sample = texts_with_trigger(4)
    texts = np.array([*sample.texts, "great", "a dull film", "dull"])
    data = audit.Dataset(texts, np.array([*sample.labels, 1, 0, 0]), sample.classes, "text", name="short and long")
    ours = explain_lime(model, data, seed=9, num_samples=200)
    for i, text in enumerate(data.texts):
        tokens, c = model.encoder.tokens(text), int(ours.target[i])
        explainer = LimeTextExplainer(split_expression=" ", bow=False, feature_selection="none", random_state=9)
        direct = explainer.explain_instance(" ".join(tokens), lambda t: model.predict_proba(list(t)), labels=(c,),
                                            num_features=len(tokens), num_samples=200)
        # The fits are float64 but the probabilities float32 (spacing 6e-8 below 1), and a text's probability can
        # change in its last bit with the batch it is scored in: we score each distinct perturbation once, texts of
        # one length together, lime its 200 samples per call. The fit passes that on with a gain of about 1
        # (measured: 1.2e-7 in the probabilities, 1.1e-7 in intercept and weights); a wrong mask, kernel or target
        # class moves them by 1e-3 or more.
        np.testing.assert_allclose(ours.local[i], [w for _, w in sorted(direct.local_exp[c])], atol=1e-6)
        np.testing.assert_allclose([ours.intercept[i], ours.score[i]], [direct.intercept[c], direct.score], atol=1e-6)


def test_table_weights_equal_lime_called_directly():
    model = two_feature_mlp(True)
    data = two_feature_table()[2].subset(np.arange(2))
    ours = explain_lime(model, data, seed=2, num_samples=400)
    training = model.encode(data.sample(TRAINING_ROWS, seed=2)).numpy().astype(np.float64)  # no built-in split
    for i, row in enumerate(model.encode(data).numpy().astype(np.float64)):
        explainer = LimeTabularExplainer(training, mode="classification", discretize_continuous=False,
                                         feature_selection="none", random_state=2)
        direct = explainer.explain_instance(row, model.predict_proba, labels=(int(ours.target[i]),),
                                            num_features=10, num_samples=400)
        np.testing.assert_allclose(ours.values[i], [w for _, w in sorted(direct.local_exp[int(ours.target[i])])],
                                   atol=1e-8)


def test_batched_table_fits_equal_lime_called_directly_with_categories():
    # Our tables are computed for all rows at once (lime_batch): lime's weights, intercepts and R^2 for each row.
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(size=300), "b": rng.exponential(size=300),
                          "color": rng.choice(["red", "green", "blue"], size=300, p=[0.5, 0.3, 0.2]),
                          "size": rng.choice(["s", "m", "l", "xl"], size=300)})
    data = audit.Dataset.from_dataframe(frame.assign(y=rng.integers(0, 3, size=300)), target="y")
    encoder = TabularEncoder.fit(data)
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(9, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))
    model = audit.Model(net, audit.Task("tabular", ("0", "1", "2"), encoder))
    ours = explain_lime(model, data, seed=6, num_samples=500)  # 300 rows: several chunks of lime_batch
    columns = RawColumns(model, 9)
    training = columns.to_raw(model.encode(data.sample(TRAINING_ROWS, seed=6)).numpy().astype(np.float64))
    for i in [0, 1, 2, 150, 299]:
        row = columns.to_raw(model.encode(data.subset([i])).numpy().astype(np.float64))[0]
        c = int(ours.target[i])
        explainer = LimeTabularExplainer(training, mode="classification", categorical_features=[2, 3],
                                         discretize_continuous=False, feature_selection="none", random_state=6)
        direct = explainer.explain_instance(row, lambda z: model.predict_proba(torch.from_numpy(columns.to_model(z))),
                                            labels=(c,), num_features=4, num_samples=500)
        np.testing.assert_allclose(ours.local[i], [w for _, w in sorted(direct.local_exp[c])], atol=1e-8)
        np.testing.assert_allclose([ours.intercept[i], ours.score[i]], [direct.intercept[c], direct.score], atol=1e-8)
    assert len(set(ours.target[[0, 1, 2, 150, 299]])) > 1  # several target classes in one batch


def test_batched_image_fits_equal_lime_called_directly():
    model = patched_digits_cnn(True)
    test = patched_digits()[2]
    images = test.inputs[:4].copy()
    images[2, :, :, 4:] = 0  # blank segments: masks that only differ there are scored once
    images[3] = 0  # all blank: one distinct image
    data = audit.Dataset(images, test.labels[:4], test.classes, "image", name="blanked digits")
    ours = explain_lime(model, data, seed=5, num_samples=300, grid=3)
    segments = grid_segments(8, 8, 3)
    for i, image in enumerate(data.inputs):
        c = int(ours.target[i])
        explainer = LimeImageExplainer(feature_selection="none", random_state=5)
        scored = []  # the probabilities lime fits to

        def classify(batch):
            scored.append(model.predict_proba(torch.tensor(batch.transpose(0, 3, 1, 2), dtype=torch.float32)))
            return scored[-1]

        direct = explainer.explain_instance(
            image.transpose(1, 2, 0).astype(np.float64), classify,
            labels=(c,), hide_color=0.0, top_labels=None, num_features=int(segments.max()) + 1, num_samples=300,
            batch_size=300, segmentation_fn=lambda _: segments)
        np.testing.assert_allclose(ours.local[i], [w for _, w in sorted(direct.local_exp[c])], atol=1e-6)
        np.testing.assert_allclose(ours.intercept[i], direct.intercept[c], atol=1e-6)
        # R^2 of a constant target is 0/0: scikit-learn (in lime) gives 1.0 when the residuals are exactly 0 and
        # 0.0 otherwise, so either side of a last-bit difference in the fit. It is compared for every image whose
        # target varies, and only the all-blank image (every sample the same image) has a constant one.
        target = np.concatenate(scored)[:, c]
        constant = np.ptp(target) <= 4 * np.finfo(np.float32).eps
        assert constant == (i == 3)
        if not constant:
            np.testing.assert_allclose(ours.score[i], direct.score, atol=1e-6)


@pytest.mark.parametrize("columns", [5, 16, 100])  # one or several 64-bit words per row
def test_distinct_rows_finds_every_repeated_row(columns):
    rows = np.random.default_rng(0).integers(0, 2, size=(400, columns)).astype(bool)
    rows[:, 3:] |= rows[:, :1]  # many repeats
    first, inverse = distinct_rows(rows)
    np.testing.assert_array_equal(rows[first][inverse], rows)
    assert len(first) == len(np.unique(rows, axis=0)) < len(rows)


def test_one_hot_groups_are_lime_columns_and_map_back_to_the_active_indicator():
    frame = pd.DataFrame({"age": [20.0, 30.0, 40.0, 50.0], "color": ["red", "blue", "red", "green"]})
    data = audit.Dataset.from_dataframe(frame.assign(y=[0, 1, 0, 1]), target="y")
    encoder = TabularEncoder.fit(data)
    model = audit.Model(torch.nn.Linear(4, 2), audit.Task("tabular", ("0", "1"), encoder))
    x = encoder.transform(data).numpy()
    columns = RawColumns(model, x.shape[1])
    raw = columns.to_raw(x)
    assert raw.shape == (4, 2) and list(raw[:, 1]) == [2, 0, 2, 1]  # blue, green, red
    np.testing.assert_array_equal(columns.to_model(raw), x)
    np.testing.assert_array_equal(columns.weights_to_model(np.array([0.5, -2.0]), raw[3]), [0.5, 0, -2.0, 0])


def test_registered_method_and_analyzer_contract():
    model, data = patched_digits_cnn(True), patched_digits()[2]
    assert get_method("lime").fn(model, data.subset(np.arange(2)), None, seed=0).shape == (2, 1, 8, 8)
    grads = [p.requires_grad for p in model.module.parameters()]
    state = copy.deepcopy(model.module.state_dict())
    first = Lime(samples=3, num_samples=200).run(model, data, seed=1)
    second = Lime(samples=3, num_samples=200).run(model, data, seed=1)
    np.testing.assert_array_equal(first.arrays["values"], second.arrays["values"])
    assert first.metrics == second.metrics
    json.dumps(first.to_dict(), allow_nan=False)
    assert no_hooks_left(model.module)
    assert [p.requires_grad for p in model.module.parameters()] == grads
    assert all(torch.equal(state[k], v) for k, v in model.module.state_dict().items())


class BrightSquare(torch.nn.Module):
    """Class 1 when a 6x6 square at (20, 20) of channel 0 is bright (RGB, 32x32)."""

    def forward(self, x):
        score = 8.0 * (x[:, 0, 20:26, 20:26].mean(dim=(1, 2)) - 0.5)
        return torch.stack([-score, score], dim=1)


def bright_square_images(n=6, seed=0):
    rng = np.random.default_rng(seed)
    x = np.clip(rng.normal(0.3, 0.05, size=(n, 3, 32, 32)), 0, 1).astype(np.float32)
    x[:, :, :16] += 0.3  # a lighter upper half: structure for the superpixels to follow
    x[:, 0, 20:26, 20:26] = 0.95
    return audit.Dataset.from_arrays(np.clip(x, 0, 1), np.ones(n, dtype=int), classes=["dark", "bright"])


def test_rgb_images_get_superpixels_and_the_planted_square_carries_the_weight():
    data = bright_square_images()
    model = audit.wrap(BrightSquare(), modality="image", classes=data.classes)
    explanation = explain_lime(model, data, seed=1, num_samples=400)
    assert explanation.segments.shape == (len(data), 32, 32)
    assert all(s.max() + 1 > 16 for s in explanation.segments)  # superpixels, not the 4x4 grid
    square = explanation.values[:, 0, 20:26, 20:26].sum(axis=(1, 2))
    assert (square > 0.8 * explanation.values[:, 0].clip(min=0).sum(axis=(1, 2))).all()


def test_superpixel_weights_equal_lime_called_directly_with_the_same_segments():
    data = bright_square_images(3, seed=2)
    model = audit.wrap(BrightSquare(), modality="image", classes=data.classes)
    ours = explain_lime(model, data, seed=4, num_samples=200)
    for i, image in enumerate(data.inputs):
        segments = ours.segments[i]
        direct = LimeImageExplainer(feature_selection="none", random_state=4).explain_instance(
            image.transpose(1, 2, 0).astype(np.float64),
            lambda batch: model.predict_proba(torch.tensor(batch.transpose(0, 3, 1, 2), dtype=torch.float32)),
            labels=(1,), hide_color=0.0, top_labels=None, num_features=int(segments.max()) + 1, num_samples=200,
            batch_size=200, segmentation_fn=lambda _: segments)
        np.testing.assert_allclose(ours.local[i], [w for _, w in sorted(direct.local_exp[1])], atol=1e-6)
