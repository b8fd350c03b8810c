"""Every metric `audit metrics` lists appears in the JSON of a run where its analyzer applies,
and every metric a run produces is in the catalog (so a policy can gate on it)."""

from __future__ import annotations

import json

import pytest

import audit
from audit.policy.gates import find_metric_spec, metric_catalog, metric_pattern


@pytest.fixture(scope="module")
def run_metrics(adult_mlp, digits_cnn, reviews_lstm) -> dict[str, dict]:
    """Full default audits of a table model with sensitive attributes, an image model and a text model."""
    cases = {  # default sample counts for adult: the robustness group gap needs groups of 10+ attacked rows
        "adult": (adult_mlp, audit.load_dataset("adult", "test").sample(1500, seed=0), None),
        "digits": (digits_cnn, audit.load_dataset("digits", "test"), 8),
        "reviews": (reviews_lstm, audit.load_dataset("reviews", "test").sample(300, seed=0), 8),
    }
    out = {}
    for name, (model, data, samples) in cases.items():
        doc = json.loads(audit.run(model, data, seed=0, samples=samples).to_json())
        assert all(r["status"] != "error" for r in doc["results"].values()), {
            k: r["error"] for k, r in doc["results"].items() if r["status"] == "error"}
        out[name] = doc["metrics"]
    return out


def test_every_listed_metric_appears_in_a_run(run_metrics):
    produced = {m for metrics in run_metrics.values() for m in metrics}
    missing = [name for name in metric_catalog() if not any(metric_pattern(name).fullmatch(m) for m in produced)]
    assert missing == []


def test_every_produced_metric_is_listed(run_metrics):
    unlisted = sorted({m for metrics in run_metrics.values() for m in metrics if find_metric_spec(m) is None})
    assert unlisted == []
