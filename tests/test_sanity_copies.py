"""The cascade's randomized copies are attributed with fewer integration steps and GradientSHAP samples than the
trained model: on planted models every stage's correlation stays where the copies' full attributions put it, every
verdict stays, and attributions that ignore the weights still fail."""

from __future__ import annotations

import numpy as np
import pytest
from planted import planted_case
from sanity_zoo import edge_detector, input_itself

from audit.analyzers.explanation_quality.analyzer import at_absent_value, order_scores
from audit.analyzers.explanation_quality.curves import feature_mask
from audit.analyzers.explanation_quality.sanity import (
    COPY_SETTINGS,
    attribute_copy,
    cascade,
    cascade_stages,
    mean_rank_correlation,
)
from audit.methods.attributions import registry
from audit.methods.attributions.methods import attribute_all
from audit.methods.attributions.sampling import explained_samples

SOUND = ["saliency", "integrated_gradients", "gradient_shap"]
INSENSITIVE = {"input_itself": input_itself, "edge_detector": edge_detector}


def cascade_correlations(kind: str, monkeypatch):
    """Per method, each stage's correlation with the trained attributions: of the copies attributed as the cascade
    does (`attribute_copy`) and with the trained model's settings; and the copies' two attributions themselves."""
    for name, fn in INSENSITIVE.items():
        monkeypatch.setitem(registry._METHODS, name, registry.AttributionMethod(name, fn, (kind,), name))
    model, data = planted_case(kind)
    subset = data.subset(explained_samples(model, data, 12, seed=0))
    x, target = model.encode(subset), model.predict(subset)
    words = model.encoder.word_index(subset.texts) if kind == "text" else None
    compared = feature_mask(model, x, words) & ~at_absent_value(model, x)
    methods = SOUND + list(INSENSITIVE)
    trained, _ = attribute_all(model, subset, methods, target, seed=0)
    coarse, full, alike = ({m: [] for m in methods} for _ in range(3))
    for copy in cascade(model, cascade_stages(model, 4), seed=0):
        cheap, _ = attribute_copy(copy, subset, methods, target, seed=0)
        exact, _ = attribute_all(copy, subset, methods, target, seed=0)
        for m in methods:
            scores = {k: order_scores(model, a[m]) for k, a in (("trained", trained), ("cheap", cheap),
                                                                ("exact", exact))}
            coarse[m].append(mean_rank_correlation(scores["trained"], scores["cheap"], compared))
            full[m].append(mean_rank_correlation(scores["trained"], scores["exact"], compared))
            alike[m].append(mean_rank_correlation(scores["exact"], scores["cheap"], compared))
    return coarse, full, alike


@pytest.mark.parametrize("kind", ["tabular", "image", "text"])
def test_fewer_steps_on_the_copies_keep_each_stages_correlation_and_every_verdict(kind, monkeypatch):
    coarse, full, alike = cascade_correlations(kind, monkeypatch)
    assert set(COPY_SETTINGS) == {"integrated_gradients", "gradient_shap"}
    # Integrated gradients at 16 steps rank the copies' features as at 50: each stage moves by little.
    assert min(alike["integrated_gradients"]) > 0.95, alike["integrated_gradients"]
    np.testing.assert_allclose(coarse["integrated_gradients"], full["integrated_gradients"], atol=0.03)
    # GradientSHAP at 10 samples is noisier per stage; its score (the median over the stages) stays.
    assert abs(np.median(coarse["gradient_shap"]) - np.median(full["gradient_shap"])) < 0.05, (coarse, full)
    for m in ("saliency", *INSENSITIVE):  # no option to cut: attributed as on the trained model
        np.testing.assert_allclose(coarse[m], full[m], atol=1e-9)
    for m in coarse:
        assert (np.median(coarse[m]) < 0.5) == (np.median(full[m]) < 0.5), (m, coarse[m], full[m])
    for m in SOUND:
        assert np.median(coarse[m]) < 0.5, (m, coarse[m])
    for m in INSENSITIVE:
        assert np.median(coarse[m]) >= 0.5, (m, coarse[m])
    np.testing.assert_allclose(coarse["input_itself"], 1.0)
