"""The `audit` command: end to end on shipped and user data, and one clear line for bad input."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import audit
from audit.io import checkpoint
from audit.cli import main


def run_cli(capsys, *args) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def adult_checkpoint(tmp_path_factory, adult_mlp):
    return checkpoint.save(adult_mlp, tmp_path_factory.mktemp("ckpt") / "adult.pt")


@pytest.fixture
def table_csv(tmp_path):
    rng = np.random.default_rng(0)
    n = 300
    frame = pd.DataFrame({
        "income": rng.normal(50, 10, n).round(1),
        "years": rng.integers(0, 30, n),
        "city": rng.choice(["north", "south"], n),
        "group": rng.choice(["a", "b"], n),
    })
    frame["approved"] = np.where(frame["income"] + rng.normal(0, 5, n) > 50, "yes", "no")
    path = tmp_path / "loans.csv"
    frame.to_csv(path, index=False)
    return path


def test_train_and_report_builtin_end_to_end(capsys, tmp_path):
    model_path = tmp_path / "digits.pt"
    code, out, err = run_cli(capsys, "train", "cnn", "--dataset", "digits", "-o", model_path, "--epochs", "3",
                             "--quiet")
    assert code == 0, err
    assert "test accuracy" in out and "trained in" in out
    report, json_path = tmp_path / "r.html", tmp_path / "r.json"
    code, out, err = run_cli(capsys, "report", model_path, "-o", report, "--json", json_path, "--quiet",
                             "--analyzers", "performance")
    assert code == 0, err
    doc = json.loads(json_path.read_text())
    assert doc["schema"] == "audit.report/1"
    assert doc["model"]["sha256"] == checkpoint.file_sha256(model_path)
    assert doc["model"]["architecture"] == "cnn" and doc["model"]["modality"] == "image"
    assert doc["data"]["name"] == "digits" and doc["data"]["rows"] == 269
    assert doc["data"]["sha256"] == audit.load_dataset("digits", "test").sha256
    assert 0.5 < doc["metrics"]["performance.accuracy"] <= 1
    assert doc["results"]["performance"]["status"] == "ok"
    assert doc["verdict"]["exit_code"] == 0
    html = report.read_text()
    assert html.startswith("<!DOCTYPE html>") and "Confusion matrix" in html
    assert sorted(p.name for p in tmp_path.iterdir()) == ["digits.pt", "r.html", "r.json"]


def test_train_on_user_csv_then_report_without_data(capsys, tmp_path, table_csv):
    model_path = tmp_path / "loans.pt"
    code, out, err = run_cli(capsys, "train", "mlp", "--data", table_csv, "--target", "approved",
                             "--sensitive", "group", "-o", model_path, "--epochs", "5", "--quiet")
    assert code == 0, err
    model = audit.load_model(model_path)
    assert "group" not in model.encoder.columns  # sensitive columns are not model inputs
    assert model.task.sensitive == ("group",)
    json_path = tmp_path / "r.json"
    code, out, err = run_cli(capsys, "report", model_path, "-o", tmp_path / "r.html", "--json", json_path,
                             "--analyzers", "performance")
    assert code == 0, err
    doc = json.loads(json_path.read_text())
    assert doc["data"]["rows"] == 45  # the held-out 15% of 300 rows
    assert doc["data"]["sensitive"] == ["group"]


def test_report_on_npz_images(capsys, tmp_path, digits_cnn):
    data = audit.load_dataset("digits", "test")
    npz = tmp_path / "digits.npz"
    np.savez(npz, x=data.inputs[:, 0], y=data.labels, site=np.arange(len(data)) % 2)
    model_path = checkpoint.save(digits_cnn, tmp_path / "d.pt")
    json_path = tmp_path / "r.json"
    code, _, err = run_cli(capsys, "report", model_path, "--data", npz, "-o", tmp_path / "r.html",
                           "--json", json_path, "--analyzers", "performance")
    assert code == 0, err
    doc = json.loads(json_path.read_text())
    assert doc["data"]["sensitive"] == ["site"]
    expected = float((digits_cnn.predict(data) == data.labels).mean())
    assert doc["metrics"]["performance.accuracy"] == pytest.approx(expected)


def test_listings(capsys):
    code, out, _ = run_cli(capsys, "datasets")
    assert code == 0
    assert "adult" in out and "48,842" in out and "sex, race, age" in out
    code, out, _ = run_cli(capsys, "models")
    assert all(name in out for name in ("mlp", "cnn", "lstm", "transformer"))
    code, out, _ = run_cli(capsys, "metrics")
    assert "performance.accuracy" in out and "higher" in out


def test_analyzer_options_from_set(capsys, tmp_path, adult_checkpoint):
    json_path = tmp_path / "r.json"
    code, _, err = run_cli(capsys, "report", adult_checkpoint, "-o", tmp_path / "r.html", "--json", json_path,
                           "--analyzers", "performance", "--set", "performance.bins=4")
    assert code == 0, err
    result = json.loads(json_path.read_text())["results"]["performance"]
    assert result["config"] == {"bins": 4}
    assert len(result["tables"]["reliability"]) == 4


# -- bad input: exit 2, one line naming the problem, no traceback, nothing written ---------------


def write(path, content: bytes | str):
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return path


BAD = {
    "missing model file": (lambda t, ck: ["report", t / "nope.pt"], r"nope\.pt: no such file"),
    "random bytes checkpoint": (lambda t, ck: ["report", write(t / "r.pt", os.urandom(2048))],
                                r"r\.pt: not a model checkpoint"),
    "truncated checkpoint": (lambda t, ck: ["report", write(t / "t.pt", ck.read_bytes()[:700])],
                             r"t\.pt: not a model checkpoint"),
    "unknown architecture": (lambda t, ck: ["train", "resnet", "--dataset", "digits"],
                             r"unknown architecture 'resnet'"),
    "unknown dataset": (lambda t, ck: ["train", "mlp", "--dataset", "mnist"], r"unknown dataset 'mnist'"),
    "unknown analyzer": (lambda t, ck: ["report", ck, "--analyzers", "magic"], r"unknown analyzer 'magic'"),
    "missing target column": (
        lambda t, ck: ["train", "mlp", "--data", write(t / "a.csv", "x,y\n1,2\n3,4\n"), "--target", "label"],
        r"a\.csv: column 'label' \(--target\) not found; columns are: x, y"),
    "missing sensitive column": (
        lambda t, ck: ["train", "mlp", "--data", write(t / "a.csv", "x,label\n1,a\n3,b\n"), "--target", "label",
                       "--sensitive", "sex"],
        r"a\.csv: column 'sex' \(--sensitive\) not found"),
    "column the model needs": (
        lambda t, ck: ["report", ck, "--data", adult_csv(t, drop="hours-per-week"), "--target", "income"],
        r"adult\.csv: column\(s\) 'hours-per-week' needed by the model are missing"),
    "NaN in a numeric feature": (
        lambda t, ck: ["report", ck, "--data", adult_csv(t, nan="age"), "--target", "income"],
        r"adult\.csv: column 'age' has 1 missing value\(s\) \(rows 3\); fill them .* or drop those rows"),
    "NPZ with wrong shapes": (
        lambda t, ck: ["report", ck, "--data", npz(t, x=np.zeros((5, 64)), y=np.zeros(5))],
        r"bad\.npz: images x must have shape \(N, H, W\) or \(N, C, H, W\), found \(5, 64\)"),
    "NPZ with mismatched labels": (
        lambda t, ck: ["report", ck, "--data", npz(t, x=np.zeros((5, 8, 8)), y=np.zeros(4))],
        r"bad\.npz: x has 5 rows but y has 4"),
    "NPZ images outside the model's range": (
        lambda t, ck: ["report", ck, "--data", npz(t, x=np.full((4, 8, 8), 255.0), y=np.array([0, 1, 2, 3]))],
        r"bad\.npz: image values span \[255, 255\], outside the model's input range \[0, 1\]; rescale"),
    "empty CSV": (lambda t, ck: ["report", ck, "--data", write(t / "e.csv", ""), "--target", "income"],
                  r"e\.csv: no rows \(the file is empty\)"),
    "header-only CSV": (lambda t, ck: ["report", ck, "--data", write(t / "h.csv", "age,income\n"),
                                       "--target", "income"], r"h\.csv: no rows"),
    "labels the model does not know": (
        lambda t, ck: ["report", ck, "--data", adult_csv(t, label="rich"), "--target", "income"],
        r"adult\.csv: target column 'income' has values \['rich'\] outside the classes \['<=50K', '>50K'\]"),
    "unknown metric in a policy": (
        lambda t, ck: ["report", ck, "--policy", write(t / "p.toml", '[gates."fairness.dp_gap"]\nmax = 0.1\n')],
        r"p\.toml: unknown metric 'fairness\.dp_gap' in gates; `audit metrics` lists them"),
    "bad option value": (lambda t, ck: ["report", ck, "--seed", "x"], r"invalid int value: 'x'"),
    "bad --set": (lambda t, ck: ["report", ck, "--set", "bins"], r"--set 'bins': expected analyzer option"),
    "analyzer option of the wrong type": (lambda t, ck: ["report", ck, "--set", "robustness.epsilon=abc"],
                                          r"analyzer 'robustness': option epsilon must be a number, found 'abc'"),
    "analyzer option out of range": (lambda t, ck: ["report", ck, "--set", "fairness.confidence=1.5"],
                                     r"fairness: confidence must lie between 0 and 1, not 1\.5"),
    "unknown analyzer option": (lambda t, ck: ["report", ck, "--set", "performance.bogus=1"],
                                r"analyzer 'performance' has no option\(s\) bogus; options: bins"),
}


def adult_csv(tmp_path, *, drop=None, nan=None, label=None):
    data = audit.load_dataset("adult", "test").subset(range(20))
    frame = data.inputs.copy()
    frame["income"] = [data.classes[i] for i in data.labels]
    if drop:
        frame = frame.drop(columns=[drop])
    if nan:
        frame.loc[3, nan] = np.nan
    if label:
        frame.loc[0, "income"] = label
    path = tmp_path / "adult.csv"
    frame.to_csv(path, index=False)
    return path


def npz(tmp_path, **arrays):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize("case", list(BAD), ids=list(BAD))
def test_bad_input_is_one_line_and_exit_2(capsys, tmp_path, adult_checkpoint, digits_cnn, case):
    build, pattern = BAD[case]
    model = adult_checkpoint
    if "NPZ" in case:
        model = checkpoint.save(digits_cnn, tmp_path / "digits.pt")
    args = build(tmp_path, model)
    before = set(tmp_path.iterdir())
    code, out, err = run_cli(capsys, *args, "-o" if args[0] == "report" else "--quiet",
                             *([tmp_path / "out.html"] if args[0] == "report" else []))
    assert code == 2, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ")
    assert "Traceback" not in err
    assert re.search(pattern, lines[0]), lines[0]
    assert set(tmp_path.iterdir()) == before  # no report, no half-written file


def test_console_script_reports_bad_input_without_traceback(tmp_path):
    junk = write(tmp_path / "junk.pt", b"not a checkpoint at all")
    proc = subprocess.run([sys.executable, "-m", "audit", "report", str(junk)], capture_output=True, text=True,
                          timeout=600)  # a hang, not slowness: imports take a minute on a loaded machine
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"error: {junk}: not a model checkpoint "
                                                "(unreadable pickle data)"]


# -- --positive-class: refused when it cannot apply; the assumed class shown when the labels do not say --------


@pytest.fixture(scope="module")
def credit_checkpoint(tmp_path_factory) -> tuple:
    """A small MLP trained through the command on a table whose labels are 1 and 2 (German credit's coding:
    either could be the favourable outcome)."""
    folder = tmp_path_factory.mktemp("credit")
    rng = np.random.default_rng(3)
    n = 400
    frame = pd.DataFrame({"amount": rng.normal(5, 2, n).round(2), "months": rng.integers(6, 48, n),
                          "sex": rng.choice(["female", "male"], n)})
    frame["y"] = np.where(frame["amount"] + rng.normal(0, 1, n) > 5, 2, 1)
    data = folder / "credit.csv"
    frame.to_csv(data, index=False)
    model = folder / "credit.pt"
    assert main(["train", "mlp", "--data", str(data), "--target", "y", "--sensitive", "sex", "-o", str(model),
                 "--epochs", "3", "--quiet"]) == 0
    return model, data


def test_a_positive_class_that_is_not_a_class_is_refused_before_the_data_is_read(capsys, tmp_path, monkeypatch,
                                                                                  credit_checkpoint):
    model, data = credit_checkpoint
    capsys.readouterr()
    import audit.io.locate as locate

    monkeypatch.setattr(locate, "streamed_source", lambda *a, **k: pytest.fail("the data was read"))
    monkeypatch.setattr(locate, "audit_data", lambda *a, **k: pytest.fail("the data was read"))
    report = tmp_path / "r.html"
    for command in (["report", model], ["compare", model, model]):
        code, out, err = run_cli(capsys, *command, "--data", data, "--target", "y", "--sensitive", "sex",
                                 "--positive-class", "good", "-o", report, "--quiet")
        assert code == 2 and out == ""
        assert err == "error: --positive-class 'good' is not a class of the model ['1', '2']\n"
        assert not report.exists()


def test_mitigate_refuses_a_positive_class_that_is_not_a_class(capsys, tmp_path, credit_checkpoint):
    model, data = credit_checkpoint
    capsys.readouterr()
    fixed = tmp_path / "fixed.pt"
    code, out, err = run_cli(capsys, "mitigate", model, "--method", "thresholds", "--sensitive", "sex",
                             "--constraint", "demographic_parity", "--positive-class", "good", "-o", fixed,
                             "--report", tmp_path / "c.html", "--quiet")
    assert code == 2 and err == "error: --positive-class 'good' is not a class of the model ['1', '2']\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_labels_1_and_2_say_which_positive_class_was_assumed(capsys, tmp_path, credit_checkpoint):
    model, data = credit_checkpoint
    capsys.readouterr()
    args = ["report", model, "--data", data, "--target", "y", "--sensitive", "sex", "--analyzers",
            "performance,fairness", "-o", tmp_path / "r.html", "--json", tmp_path / "r.json", "--quiet"]
    assert run_cli(capsys, *args)[0] == 0
    findings = json.loads((tmp_path / "r.json").read_text())["verdict"]["findings"]
    assumed = [f for f in findings if "class is assumed to be '2'" in f["sentence"]]
    assert [f["severity"] for f in assumed] == ["medium"] and "--positive-class 1" in assumed[0]["next"], findings
    assert run_cli(capsys, *args, "--positive-class", "2")[0] == 0  # said: nothing to warn of
    findings = json.loads((tmp_path / "r.json").read_text())["verdict"]["findings"]
    assert not any("assumed" in f["sentence"] for f in findings), findings


def test_labels_1_and_2_put_the_assumed_positive_class_on_the_first_lines(capsys, tmp_path, credit_checkpoint):
    model, data = credit_checkpoint
    capsys.readouterr()
    args = ["report", model, "--data", data, "--target", "y", "--sensitive", "sex", "--analyzers",
            "performance,fairness", "-o", tmp_path / "r.html", "--quiet"]
    code, out, err = run_cli(capsys, *args)
    assert code == 0, err
    assumed = r"medium: The positive \(favourable\) class is assumed to be '2'"
    assert out.startswith("CONCERNS") and re.search(assumed, out), out
    code, out, err = run_cli(capsys, *args, "--positive-class", "2")  # said: nothing to warn of
    assert code == 0, err
    assert "positive class" not in out, out
