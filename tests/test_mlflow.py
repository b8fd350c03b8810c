"""MLflow tracking: a run logged to a local file store reads back, through MLflow's client, as the audit's JSON has
it (every metric, interval bound, parameter, tag and artifact); compare and mitigate log parent and child runs;
names from data become valid MLflow keys; without MLflow, --mlflow fails first in one line."""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID
from mlflow.utils.validation import _validate_metric_name, _validate_param_name

import audit
from audit._util.distribution import install_hint
from audit._util.errors import AuditInputError
from audit.cli import main
from audit.executor.compare import compare
from audit.io import checkpoint
from audit.models.checkpoint import load as load_model
from audit.models.training import TrainConfig, train
from audit.policy.gates import Gate, Policy
from audit.report.ci import render_markdown
from audit.report.tracking import KEYS_ARTIFACT, tracking_key, tracking_uri

# A column name MLflow's keys cannot hold: a path that climbs out (`/../`), a colon, a terminal escape, a space,
# a line break and a letter outside ASCII. Every fairness metric of the column carries it.
SENSITIVE = "grp/../x:\x1b[31m é\n"
ARTIFACTS = {"report.html", "audit.json", "summary.md", "model_card.md", "evidence.md"}


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mlflow")
    rng = np.random.default_rng(0)
    n = 240
    frame = pd.DataFrame({"x0": rng.normal(size=n), "x1": rng.normal(size=n), SENSITIVE: rng.choice(["a", "b"], n)})
    frame["label"] = np.where(frame["x0"] > 0, "no", "yes")
    frame.to_parquet(folder / "data.parquet", index=False)
    data = audit.Dataset.from_dataframe(frame, target="label", sensitive=[SENSITIVE], name="hostile")
    trained = train("mlp", *data.split([0.6, 0.2, 0.2], seed=0), config=TrainConfig(epochs=2), quiet=True).model
    model = load_model(checkpoint.save(trained, folder / "m.pt"))  # a model with a path and a hash
    run = audit.run(model, data, ["performance", "fairness"], options={"fairness": {"mitigation": False}})
    return {"folder": folder, "trained": trained, "model": model, "data": data, "run": run}


@pytest.fixture
def store(tmp_path, monkeypatch) -> Path:
    """A folder for a file store, and no tracking URI or experiment from the environment."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    return tmp_path / "mlruns"


def reader(folder: Path, monkeypatch) -> MlflowClient:
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    return MlflowClient(tracking_uri=folder.as_uri())


def artifact(client: MlflowClient, run_id: str, path: str, tmp_path: Path) -> str:
    return Path(client.download_artifacts(run_id, path, str(tmp_path))).read_text(encoding="utf-8")


def runs(client: MlflowClient, experiment: str = "Default") -> dict[str, object]:
    """The runs of `experiment`, by run name."""
    found = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    return {r.info.run_name: r for r in found}


def expected_metrics(document: dict) -> dict[str, float]:
    """MLflow key -> value for every metric of a run's JSON that has a value and each bound of its interval."""
    expected = {tracking_key(k): v for k, v in document["metrics"].items() if v is not None}
    for name, (low, high) in document["intervals"].items():
        expected.update({tracking_key(name, "_lower"): low, tracking_key(name, "_upper"): high})
    return {k: v for k, v in expected.items() if v is not None}


def test_a_run_reads_back_as_its_json(hostile, store, monkeypatch, tmp_path):
    run = hostile["run"]
    document = run.to_dict()
    run_id = run.log_mlflow(str(store))
    assert "MLFLOW_ALLOW_FILE_STORE" not in os.environ  # opened for the directory named, then as it was
    client = reader(store, monkeypatch)
    logged = client.get_run(run_id)
    assert logged.info.status == "FINISHED"
    assert client.get_experiment(logged.info.experiment_id).name == "Default"

    assert logged.data.metrics == expected_metrics(document)
    hostile_metric = f"fairness.{SENSITIVE}.demographic_parity_difference"
    low, high = run.intervals[hostile_metric]
    key = tracking_key(hostile_metric)
    assert logged.data.metrics[key] == run.metrics[hostile_metric]
    assert (logged.data.metrics[f"{key}_lower"], logged.data.metrics[f"{key}_upper"]) == (low, high)
    names = json.loads(artifact(client, run_id, KEYS_ARTIFACT, tmp_path))
    assert names[key] == hostile_metric and names[f"{key}_lower"] == f"{hostile_metric}_lower"
    assert "performance.accuracy" not in names  # a key that needed no change keeps the name

    params = logged.data.params
    assert params["model.sha256"] == run.model["sha256"] and params["data.sha256"] == run.data["sha256"]
    assert (params["seed"], params["analyzers"]) == ("0", "performance,fairness")
    assert params["policy"] == run.provenance["policy"] and params["data.sensitive"] == SENSITIVE
    assert params["fairness.confidence"] == "0.95" and params["fairness.mitigation"] == "false"

    tags = logged.data.tags
    verdict = document["verdict"]
    assert (tags["audit.verdict"], tags["audit.exit_code"]) == (verdict["status"], str(verdict["exit_code"]))
    assert tags["mlflow.note.content"] == tags["audit.summary"] == verdict["summary"]
    for severity in ("high", "medium", "low", "info"):
        assert tags[f"audit.findings.{severity}"] == str(sum(f["severity"] == severity for f in verdict["findings"]))

    assert {a.path for a in client.list_artifacts(run_id)} == ARTIFACTS | {KEYS_ARTIFACT}
    assert json.loads(artifact(client, run_id, "audit.json", tmp_path)) == json.loads(run.to_json())
    assert artifact(client, run_id, "model_card.md", tmp_path) == run.to_model_card()
    assert artifact(client, run_id, "summary.md", tmp_path) == render_markdown(run)
    assert artifact(client, run_id, "evidence.md", tmp_path) == run.to_evidence().to_markdown()
    assert artifact(client, run_id, "report.html", tmp_path).startswith("<!DOCTYPE html>")


def test_the_tags_carry_a_failed_gate(hostile, store, monkeypatch):
    """Planted: a gate the model cannot pass. The same run without it is ungated."""
    policy = Policy(gates=(Gate("performance.accuracy", min=1.01),))
    gated = audit.run(hostile["model"], hostile["data"], ["performance"], policy=policy)
    client = reader(store, monkeypatch)
    failed = client.get_run(gated.log_mlflow(str(store))).data.tags
    assert (failed["audit.verdict"], failed["audit.exit_code"], failed["audit.gates.failed"]) == ("fail", "1", "1")
    assert failed["audit.gates.passed"] == "0"
    ungated = client.get_run(hostile["run"].log_mlflow(str(store))).data.tags
    assert (ungated["audit.verdict"], ungated["audit.gates.failed"]) == ("ungated", "0")


@pytest.mark.parametrize("name", [
    "performance.accuracy", "fairness.sex.demographic_parity_difference", SENSITIVE, "../../etc/passwd", ".", "",
    "..hidden", "a" * 400, "col:with:colons", "日本語", "\ud800lone surrogate", "x/y"])
def test_every_name_becomes_a_key_mlflow_accepts(name):
    for suffix in ("", "_lower"):
        key = tracking_key(name, suffix)
        _validate_metric_name(key)
        _validate_param_name(key)
        assert len(key) <= 250 and key.endswith(suffix)
        assert re.fullmatch(r"[A-Za-z0-9_.\-]+", key)
    safe = re.fullmatch(r"[A-Za-z0-9_\-][A-Za-z0-9_.\-]*", name) and len(name) <= 250
    assert (tracking_key(name) == name) == bool(safe)


def test_names_that_differ_get_keys_that_differ():
    names = [SENSITIVE, SENSITIVE.replace("é", "e"), "a/b", "a:b", "a_b", "a" * 400, "a" * 401]
    assert len({tracking_key(n) for n in names}) == len(names)


def test_a_directory_is_a_file_store_and_a_uri_stays_as_given(store, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert tracking_uri("runs") == (tmp_path / "runs").resolve().as_uri()
    for uri in ("sqlite:///mlflow.db", "http://localhost:5000", "databricks", store.as_uri()):
        assert tracking_uri(uri) == uri
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://tracker.example:5000")
    assert tracking_uri() == "http://tracker.example:5000"


def test_report_command_logs_its_json(hostile, store, monkeypatch, tmp_path, capsys):
    folder = hostile["folder"]
    json_path = tmp_path / "r.json"
    code = main(["report", str(folder / "m.pt"), "--data", str(folder / "data.parquet"), "--target", "label",
                 "--sensitive", SENSITIVE, "--analyzers", "performance,fairness", "--quiet", "-o",
                 str(tmp_path / "r.html"), "--json", str(json_path), "--mlflow", "--mlflow-uri", str(store),
                 "--mlflow-experiment", "audits"])
    assert code == 0
    client = reader(store, monkeypatch)
    (logged,) = runs(client, "audits").values()
    assert f"MLflow run {logged.info.run_id} in experiment 'audits'" in capsys.readouterr().out
    written = json.loads(json_path.read_text())
    assert logged.data.metrics == expected_metrics(written)
    assert logged.data.params["model.sha256"] == written["model"]["sha256"] == checkpoint.file_sha256(folder / "m.pt")
    assert artifact(client, logged.info.run_id, "audit.json", tmp_path) == json_path.read_text()


def test_compare_logs_a_parent_run_and_a_run_per_model(hostile, store, monkeypatch, tmp_path):
    folder = hostile["folder"]
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store.as_uri())
    json_path = tmp_path / "c.json"
    code = main(["compare", str(folder / "m.pt"), str(folder / "m.pt"), "--data", str(folder / "data.parquet"),
                 "--target", "label", "--sensitive", SENSITIVE, "--analyzers", "performance", "--quiet", "-o",
                 str(tmp_path / "c.html"), "--json", str(json_path), "--mlflow"])
    assert code == 0
    client = reader(store, monkeypatch)
    logged = runs(client)
    assert set(logged) == {"m.pt vs m.pt", "baseline", "candidate"}
    parent, written = logged.pop("m.pt vs m.pt"), json.loads(json_path.read_text())
    assert MLFLOW_PARENT_RUN_ID not in parent.data.tags
    assert parent.data.tags["audit.verdict"] == written["verdict"]["status"]
    assert parent.data.tags["audit.gates.newly_failed"] == "0"
    assert {a.path for a in client.list_artifacts(parent.info.run_id)} == {"compare.html", "compare.json",
                                                                            "summary.md"}
    assert artifact(client, parent.info.run_id, "compare.json", tmp_path) == json_path.read_text()
    for label, child in logged.items():
        assert child.data.tags[MLFLOW_PARENT_RUN_ID] == parent.info.run_id
        assert child.data.metrics == expected_metrics(written[label])
        assert {a.path for a in client.list_artifacts(child.info.run_id)} == ARTIFACTS


def test_mitigate_logs_the_model_before_and_after(hostile, store, monkeypatch, tmp_path):
    folder = hostile["folder"]
    data, fixed = str(folder / "data.parquet"), tmp_path / "fixed.pt"
    code = main(["mitigate", str(folder / "m.pt"), "--method", "thresholds", "--sensitive", SENSITIVE,
                 "--constraint", "demographic_parity", "--validation", data, "--data", data, "--target", "label",
                 "--analyzers", "performance", "--quiet", "-o", str(fixed), "--report", str(tmp_path / "r.html"),
                 "--mlflow", "--mlflow-uri", str(store)])
    assert code == 0
    logged = runs(reader(store, monkeypatch))
    parent = logged.pop("m.pt vs fixed.pt")
    assert parent.data.tags["audit.mitigation.method"] == "thresholds"
    assert set(logged) == {"before", "after"}
    assert logged["before"].data.params["model.sha256"] == checkpoint.file_sha256(folder / "m.pt")
    assert logged["after"].data.params["model.sha256"] == checkpoint.file_sha256(fixed)
    assert all(run.data.tags[MLFLOW_PARENT_RUN_ID] == parent.info.run_id for run in logged.values())


def test_without_mlflow_the_flag_fails_first_in_one_line(hostile, store, monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "mlflow", None)
    html = tmp_path / "r.html"
    code = main(["report", str(hostile["folder"] / "m.pt"), "--quiet", "-o", str(html), "--mlflow", "--mlflow-uri",
                 str(store)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and install_hint("mlflow") in err and "Traceback" not in err
    assert not html.exists() and not store.exists()
    with pytest.raises(AuditInputError, match=re.escape(install_hint("mlflow"))):
        hostile["run"].log_mlflow(str(store))


def test_the_store_options_go_with_the_flag(hostile, store, capsys):
    assert main(["report", str(hostile["folder"] / "m.pt"), "--mlflow-uri", str(store)]) == 2
    assert "--mlflow-uri and --mlflow-experiment go with --mlflow" in capsys.readouterr().err
    assert not store.exists()


def test_a_comparison_of_models_in_memory_logs_from_python(hostile, store, monkeypatch):
    model = hostile["model"]
    comparison = compare(hostile["trained"], model, hostile["data"], ["performance"])  # in memory: no path, no hash
    parent_id = comparison.log_mlflow(str(store), "api", labels=("before", "after"))
    logged = runs(reader(store, monkeypatch), "api")
    assert set(logged) == {"mlp vs m.pt", "before", "after"}
    assert logged["mlp vs m.pt"].info.run_id == parent_id
    assert "model.sha256" not in logged["before"].data.params
    assert logged["mlp vs m.pt"].data.params["after.model.sha256"] == model.source["sha256"]
    assert logged["after"].data.metrics == expected_metrics(comparison.candidate.to_dict())


def test_a_deleted_experiment_is_one_line(hostile, store, monkeypatch):
    client = reader(store, monkeypatch)
    client.delete_experiment(client.create_experiment("gone"))
    with pytest.raises(AuditInputError, match="MLflow experiment 'gone' is deleted"):
        hostile["run"].log_mlflow(str(store), "gone")
