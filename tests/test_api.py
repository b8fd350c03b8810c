"""The Python API: curated surface, run(), AuditRun, wrap() of a user's own module."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

import audit
from audit.analyzers import ANALYZERS
from audit.analyzers.performance.analyzer import PerformanceTally
from audit.core.result import Result


def test_public_api_is_curated():
    assert audit.__all__ == sorted(audit.__all__, key=str.lower) or audit.__all__ == sorted(audit.__all__)
    for name in audit.__all__:
        assert hasattr(audit, name), name
    for name in ("load_model", "wrap", "load_dataset", "Dataset", "run", "AuditRun", "Policy"):
        assert name in audit.__all__


def test_run_returns_audit_run_with_metrics_and_json(adult_mlp):
    data = audit.load_dataset("adult", "test").sample(2000, seed=0)
    run = audit.run(adult_mlp, data, analyzers=["performance"], seed=0)
    assert isinstance(run, audit.AuditRun)
    assert set(run.metrics) >= {"performance.accuracy", "performance.ece"}
    doc = json.loads(run.to_json())
    assert doc == json.loads(json.dumps(run.to_dict()))
    assert doc["metrics"] == pytest.approx(run.metrics)
    assert run.verdict.status == "ungated" and run.verdict.exit_code == 0
    html = run._repr_html_()
    assert "<!DOCTYPE" not in html and "Performance" in html


def test_configured_analyzer_objects_are_used(adult_mlp):
    data = audit.load_dataset("adult", "test").sample(500, seed=0)
    run = audit.run(adult_mlp, data, analyzers=[audit.Performance(bins=5)])
    assert run.result("performance").config == {"bins": 5}
    assert len(run.result("performance").tables["reliability"]) == 5


def test_same_seed_same_numbers(compas_mlp):
    data = audit.load_dataset("compas", "test")
    first = audit.run(compas_mlp, data, seed=3).to_dict()
    second = audit.run(compas_mlp, data, seed=3).to_dict()
    assert first["metrics"] == second["metrics"]
    assert first["results"].keys() == second["results"].keys()


def test_failing_analyzer_becomes_error_result_and_run_goes_on(adult_mlp, monkeypatch):
    def boom(self, chunk, proba, start):
        raise RuntimeError("kaboom")

    monkeypatch.setattr(PerformanceTally, "add", boom)
    run = audit.run(adult_mlp, audit.load_dataset("adult", "test").sample(100, seed=0), analyzers=["performance"])
    result = run.result("performance")
    assert result.status == "error" and "kaboom" in result.error
    assert run.verdict.errored_analyzers == ("performance",)
    assert run.verdict.status == "incomplete" and run.verdict.exit_code == 3  # fail closed without a policy too
    policy = audit.Policy.from_dict({"gates": {"performance.accuracy": {"min": 0.5}}})
    assert policy.evaluate(run).exit_code == 3


class TwoTower(nn.Module):
    """A user's own architecture, nothing like the registry's."""

    def __init__(self):
        super().__init__()
        self.left, self.right = nn.Linear(2, 3), nn.Linear(2, 3)

    def forward(self, x):
        return self.left(x[:, :2]) * torch.sigmoid(self.right(x[:, 2:]))


def test_wrap_user_module_of_any_architecture():
    torch.manual_seed(0)
    module = TwoTower()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 4)).astype(np.float32)
    y = rng.integers(0, 3, 40)
    data = audit.Dataset.from_arrays(x, y, feature_names=["a", "b", "c", "d"], classes=["0", "1", "2"])
    model = audit.wrap(module, modality="tabular", classes=["0", "1", "2"])
    expected = torch.softmax(module(torch.from_numpy(x)), dim=1).detach().numpy()
    np.testing.assert_allclose(model.predict_proba(data), expected, rtol=1e-5)
    np.testing.assert_allclose(model.predict_proba(x), expected, rtol=1e-5)
    run = audit.run(model, data, analyzers=["performance"])
    assert run.metrics["performance.accuracy"] == pytest.approx(float((expected.argmax(1) == y).mean()))


def test_result_repr_html_escapes_names():
    result = Result(analyzer="performance", metrics={"performance.accuracy": 0.5},
                    tables={"per_class": __import__("pandas").DataFrame({"class": ["<script>alert(1)</script>"]})})
    html = result._repr_html_()
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_every_registered_analyzer_declares_itself():
    for cls in ANALYZERS.classes():
        assert cls.name and cls.title and cls.description and cls.metric_prefix
        for name, spec in cls.metrics.items():
            assert name.startswith(cls.metric_prefix + ".")
            assert spec.better in ("higher", "lower")
