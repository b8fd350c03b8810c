"""The model-randomization sanity check on a zoo of small trained models: gradients and
integrated gradients pass on every model; the input itself, an edge detector of the input and
(on CNNs) Guided Backprop fail; the zoo's tiny BERT is a Hugging Face model (`audit.from_transformers`)."""

from __future__ import annotations

import pytest
from sanity_zoo import INSENSITIVE, SOUND, ZOO

from audit.analyzers.explanation_quality.analyzer import ExplanationQuality
from audit.methods.attributions import registry
@pytest.fixture(scope="module")
def zoo_results():
    """The sanity table of each model of the zoo, every model trained and checked once."""
    tables = {}
    with pytest.MonkeyPatch.context() as patch:
        for name, fn in INSENSITIVE.items():
            patch.setitem(registry._METHODS, name, registry.AttributionMethod(name, fn, ("tabular", "image", "text"),
                                                                              name))
        for model_name, (model, data, guided) in ZOO.items():
            methods = SOUND + ("input_itself", "edge_detector") + (("guided_backprop",) if guided else ())
            result = ExplanationQuality(methods=methods, samples=12, steps=4).run(model(), data(), seed=0)
            assert not result.warnings, result.warnings
            tables[model_name] = result
    return tables


@pytest.mark.parametrize("model", list(ZOO))
def test_sound_methods_pass_and_insensitive_attributions_fail(zoo_results, model):
    result = zoo_results[model]
    m = result.metrics
    for method in SOUND:
        assert m[f"explanations.{method}.sanity_passed"] == 1.0, result.tables["sanity"]
    for method in set(INSENSITIVE) & set(result.details["methods"]):
        assert m[f"explanations.{method}.sanity_passed"] == 0.0, result.tables["sanity"]
    assert m["explanations.input_itself.randomization_correlation"] == pytest.approx(1.0)
