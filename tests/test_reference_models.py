"""The shipped model specs reach their accuracy, and the example policy stops the models it must.

Trains every spec in models/ once (about two minutes on two cores), on one test worker.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest
from junit_schema import valid_junit

import audit
from audit.cli import main
from audit.models.spec import ModelSpec

ROOT = Path(__file__).resolve().parents[1]
POLICY = ROOT / "examples" / "ci" / "policy.toml"
MIN_ACCURACY = {
    "digits-cnn": 0.95, "adult-mlp": 0.84, "compas-mlp": 0.65, "reviews-lstm": 0.70, "reviews-transformer": 0.70,
    "adult-mlp-biased": 0.80, "digits-cnn-fragile": 0.95,
}
POLICY_ANALYZERS = "performance,fairness,robustness"
# Mitigated variants: their full-size training and acceptance numbers are benchmarks/mitigation.py's,
# small variants are tests/test_mitigation_training.py's (training them here would add minutes).
MITIGATED = {"adult-mlp-reweighed", "adult-mlp-lagrangian", "adult-mlp-adversarial-debiasing", "digits-cnn-pgd"}

@pytest.fixture(scope="module")  # README's test command keeps a file's tests on one worker (--dist loadfile)
def zoo(tmp_path_factory) -> Path:
    """Every spec of models/, copied and trained into a temporary folder."""
    folder = tmp_path_factory.mktemp("zoo")
    for spec in sorted(p for p in (ROOT / "models").glob("*.toml") if p.stem in MIN_ACCURACY):
        shutil.copy(spec, folder / spec.name)
        assert main(["train", str(folder / spec.name), "--quiet"]) == 0
    return folder


def test_every_spec_has_an_accuracy_floor():
    assert {p.stem for p in (ROOT / "models").glob("*.toml")} == set(MIN_ACCURACY) | MITIGATED


@pytest.mark.parametrize("name", list(MIN_ACCURACY))
def test_spec_reaches_its_test_accuracy(zoo, name):
    spec = ModelSpec.from_toml(zoo / f"{name}.toml")
    model = audit.load_model(spec.output)
    metrics = model.task.metrics
    assert metrics["test_accuracy"] >= MIN_ACCURACY[name]  # training time: benchmarks/training.py


def report(zoo: Path, name: str, tmp_path: Path, *extra: str) -> tuple[int, ET.Element]:
    junit = tmp_path / f"{name}.xml"
    code = main(["report", str(zoo / f"{name}.pt"), "--policy", str(POLICY), "--junit", str(junit),
                 "-o", str(tmp_path / f"{name}.html"), "--quiet", *extra])
    return code, valid_junit(junit)


def failed_gates(junit: ET.Element) -> set[str]:
    cases = junit.find("testsuite[@name='audit.gates']").findall("testcase")
    return {c.get("name") for c in cases if c.find("failure") is not None or c.find("error") is not None}


@pytest.mark.parametrize("name", ["adult-mlp", "digits-cnn"])
def test_policy_passes_reference_models(zoo, tmp_path, name):
    code, junit = report(zoo, name, tmp_path, "--analyzers", POLICY_ANALYZERS)
    assert code == 0, failed_gates(junit)
    assert failed_gates(junit) == set()


@pytest.mark.parametrize("name, gate", [
    ("adult-mlp-biased", "fairness.sex.demographic_parity_difference"),
    ("digits-cnn-fragile", "robustness.pgd_accuracy_ratio"),
])
def test_policy_blocks_biased_and_fragile_models(zoo, tmp_path, name, gate):
    code, junit = report(zoo, name, tmp_path, "--analyzers", POLICY_ANALYZERS)
    assert code == 1
    assert gate in failed_gates(junit)
    failure = next(c for c in junit.iter("testcase") if c.get("name") == gate).find("failure")
    assert re.search(r"value [\d.]+ (above the maximum|below the minimum)", failure.get("message"))


def test_gate_on_analyzer_that_did_not_run_exits_3(zoo, tmp_path):
    code, junit = report(zoo, "adult-mlp", tmp_path, "--analyzers", "performance")
    assert code == 3
    assert "robustness.sanity_passed" in failed_gates(junit)


def test_compare_gates_a_regression(zoo, tmp_path):
    code = main(["compare", str(zoo / "adult-mlp.pt"), str(zoo / "adult-mlp-biased.pt"), "--policy", str(POLICY),
                 "--analyzers", POLICY_ANALYZERS, "-o", str(tmp_path / "c.html"), "--json",
                 str(tmp_path / "c.json"), "--quiet"])
    assert code == 1
    doc = json.loads((tmp_path / "c.json").read_text())
    gate = next(g for g in doc["verdict"]["gates"] if g["metric"] == "fairness.sex.demographic_parity_difference")
    assert gate["status"] == "fail" and "rose by" in gate["message"]
    changes = {row["metric"]: row for row in doc["changes"]}
    assert changes["fairness.sex.demographic_parity_difference"]["improved"] is False
