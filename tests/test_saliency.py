"""The saliency analyzer: planted causes found in its global ranking, examples, figures, contract."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from explain_helpers import assert_same_state, module_state
from planted import (
    INFORMATIVE,
    TRIGGER,
    patch_mask,
    patched_class_images,
    patched_digits,
    patched_digits_cnn,
    train_on,
    trigger_lstm,
    trigger_word_reviews,
    two_feature_mlp,
    two_feature_table,
)

import audit
from audit.analyzers import ANALYZERS
from audit.analyzers.saliency.analyzer import SaliencyAnalyzer
from audit.methods.attributions.sampling import explained_samples
from audit._util.errors import AuditInputError
from audit.policy.gates import find_metric_spec


def patch_pixels() -> set[str]:
    return {f"{r},{c}" for r, c in zip(*np.nonzero(patch_mask()[0]))}


@pytest.fixture(scope="module")
def color_table():
    """Three noise columns and a categorical `color`; the label is color == red."""
    rng = np.random.default_rng(0)
    n = 1200
    frame = pd.DataFrame(rng.normal(size=(n, 3)), columns=["a", "b", "c"])
    frame["color"] = rng.choice(["red", "green", "blue"], size=n)
    full = audit.Dataset(frame, (frame["color"] == "red").to_numpy().astype(np.int64), ("other", "red"), "tabular")
    splits = full.split([0.7, 0.15, 0.15], seed=0)
    return train_on("mlp", splits, epochs=10, lr=0.01, model_config={"hidden": (16,)}), splits[2]


def test_the_two_label_features_top_the_global_ranking_for_every_method():
    result = SaliencyAnalyzer(samples=24).run(two_feature_mlp(True), two_feature_table()[2])
    importance = result.tables["importance"]
    assert list(importance.columns) == ["integrated_gradients", "saliency", "gradient_shap"]
    for method in importance.columns:
        assert set(importance[method].sort_values(ascending=False).index[:2]) == {f"x{i}" for i in INFORMATIVE}
        assert result.metrics[f"saliency.{method}.top_feature_share"] == pytest.approx(importance[method].max())
    control = SaliencyAnalyzer(samples=24).run(two_feature_mlp(False), two_feature_table(planted=False)[2])
    for method in control.tables["importance"].columns:
        assert control.tables["importance"][method].idxmax() == "x0"


def test_the_planted_patch_holds_most_of_the_importance_of_its_class():
    images = patched_class_images()
    result = SaliencyAnalyzer(samples=16, methods=("integrated_gradients", "gradient_shap")).run(
        patched_digits_cnn(True), images)
    control = SaliencyAnalyzer(samples=16, methods=("integrated_gradients", "gradient_shap")).run(
        patched_digits_cnn(False), images)
    for method in ("integrated_gradients", "gradient_shap"):
        shares = result.arrays[f"importance.{method}"]
        assert shares.shape == (8, 8) and shares.sum() == pytest.approx(1.0)
        assert shares[patch_mask()[0]].sum() > 0.5
        assert result.tables["importance"][method].loc[list(patch_pixels())].sum() == pytest.approx(
            shares[patch_mask()[0]].sum())
        assert control.arrays[f"importance.{method}"][patch_mask()[0]].sum() < 0.25


def test_the_trigger_word_tops_the_word_ranking():
    result = SaliencyAnalyzer(samples=24).run(trigger_lstm(True), trigger_word_reviews()[2])
    words = result.tables["importance"]
    assert words["count"].loc[TRIGGER] >= 5
    for method in ("integrated_gradients", "saliency", "gradient_shap"):
        assert words[method].idxmax() == TRIGGER
    control = SaliencyAnalyzer(samples=24).run(trigger_lstm(False), trigger_word_reviews(planted=False)[2])
    for method in ("integrated_gradients", "saliency", "gradient_shap"):
        assert control.tables["importance"][method].idxmax() != TRIGGER


def test_one_hot_features_are_summed_back_to_their_column(color_table):
    model, test = color_table
    result = SaliencyAnalyzer(samples=20, methods=("integrated_gradients",)).run(model, test)
    shares = result.tables["importance"]["integrated_gradients"]
    assert sorted(shares.index) == ["a", "b", "c", "color"]
    assert shares.idxmax() == "color" and shares.sum() == pytest.approx(1.0)
    assert result.arrays["attributions.integrated_gradients"].shape == (20, 6)


def test_only_the_rows_own_category_counts_for_a_one_hot_column(color_table):
    model, test = color_table
    result = SaliencyAnalyzer(samples=20, methods=("saliency",)).run(model, test)
    gradients = np.abs(result.arrays["attributions.saliency"])
    x = model.encode(test.subset(result.arrays["samples"])).numpy()
    own_category = (gradients[:, 3:] * x[:, 3:]).sum()
    assert (gradients[:, 3:] * (1 - x[:, 3:])).sum() > 0  # the other categories have gradients too
    assert result.tables["importance"]["saliency"].loc["color"] == pytest.approx(
        own_category / (gradients[:, :3].sum() + own_category))


def test_explained_samples_are_seeded_and_include_misclassified_ones():
    model, data = two_feature_mlp(True), two_feature_table()[2]
    wrong = np.flatnonzero(model.predict(data) != model.labels(data))
    assert 0 < len(wrong) < 16
    chosen = explained_samples(model, data, 32, seed=1)
    assert len(chosen) == 32 and set(wrong) <= set(chosen)
    np.testing.assert_array_equal(chosen, explained_samples(model, data, 32, seed=1))
    assert not np.array_equal(chosen, explained_samples(model, data, 32, seed=2))
    assert len(explained_samples(model, data.subset(np.arange(10)), 32, seed=0)) == 10


def test_same_seed_same_result_and_nothing_left_on_the_model():
    model, images = patched_digits_cnn(True), patched_digits()[2]
    before = module_state(model.module)
    first = SaliencyAnalyzer(samples=12).run(model, images, seed=3)
    assert_same_state(before, module_state(model.module))
    second = SaliencyAnalyzer(samples=12).run(model, images, seed=3)
    assert first.metrics == second.metrics
    for name, array in first.arrays.items():
        np.testing.assert_array_equal(array, second.arrays[name])
    assert set(first.details["methods"]) == {"integrated_gradients", "saliency", "gradient_shap", "grad_cam"}
    assert first.arrays["attributions.grad_cam"].shape == (12, 1, 8, 8)
    assert [f.title for f in first.figures] == ["Global importance", "Attributions on examples"]
    json.dumps(first.to_dict(), allow_nan=False)


def test_target_explains_another_class():
    model, data = two_feature_mlp(True), two_feature_table()[2]
    by_index = SaliencyAnalyzer(samples=8, target=1, methods=("saliency",)).run(model, data)
    by_name = SaliencyAnalyzer(samples=8, target="yes", methods=("saliency",)).run(model, data)
    assert (by_index.arrays["targets"] == 1).all()
    samples = by_name.tables["samples"]  # the report shows classes by name, not as 0/1
    assert set(samples["target"]) == {"yes"} and set(samples[["label", "predicted"]].stack()) <= {"no", "yes"}
    assert (samples["correct"] == (samples["label"] == samples["predicted"])).all()
    np.testing.assert_array_equal(by_index.arrays["attributions.saliency"], by_name.arrays["attributions.saliency"])
    with pytest.raises(AuditInputError, match="target class 'maybe' is not a class"):
        SaliencyAnalyzer(target="maybe").run(model, data)


def test_a_method_that_cannot_run_is_a_warning_not_a_failure():
    images = patched_class_images().sample(4)
    flat = audit.wrap(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10)), modality="image",
                      classes=images.classes)
    result = SaliencyAnalyzer(methods=("saliency", "grad_cam")).run(flat, images)
    assert result.status == "ok" and result.details["methods"] == ["saliency"]
    assert any("grad_cam skipped" in w and "no nn.Conv2d" in w for w in result.warnings)
    table = SaliencyAnalyzer(methods=("grad_cam", "saliency")).run(two_feature_mlp(True), two_feature_table()[2])
    assert table.warnings == ("grad_cam skipped: it does not support tabular models",)


def test_text_figures_and_metrics_are_listed():
    result = SaliencyAnalyzer(samples=6, methods=("saliency",)).run(trigger_lstm(True), trigger_word_reviews()[2])
    assert [f.title for f in result.figures] == ["Global importance", "Token attributions"]
    assert all(f.png.startswith(b"\x89PNG") for f in result.figures)
    assert "saliency" in ANALYZERS.defaults()
    assert find_metric_spec("saliency.saliency.top_feature_share").better == "lower"
