"""Group thresholds: fitted by fairlearn, carried as plain data in the checkpoint, replayed exactly when predicting."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from planted import labelled_csvs

import audit
from audit.io import checkpoint
from audit.cli import main
from audit._util.errors import AuditInputError
from audit.mitigation.postprocess import with_thresholds

SEX = "sex"


def selection_gap(predicted: np.ndarray, data) -> float:
    groups = data.sensitive[SEX].astype(str).to_numpy()
    rates = [predicted[groups == g].mean() for g in np.unique(groups)]
    return max(rates) - min(rates)


@pytest.mark.parametrize("constraint", ["demographic_parity", "equalized_odds"])
def test_checkpoint_replays_threshold_optimizer(adult_mlp, adult_fit_and_test, tmp_path, constraint):
    validation, test = adult_fit_and_test
    fixed, optimizer = with_thresholds(adult_mlp, validation, column=SEX, constraint=constraint, seed=7)
    path = checkpoint.save(fixed, tmp_path / "fixed.pt")
    payload = torch.load(path, weights_only=True)
    assert payload["task"]["postprocessing"]["column"] == SEX
    loaded = audit.load_model(path)
    score = adult_mlp.proba(adult_mlp.encode(test))
    groups = test.sensitive[SEX].astype(str).to_numpy()
    expected = optimizer.predict(score, sensitive_features=groups, random_state=7)
    assert np.array_equal(loaded.predict(test), expected)
    chance = loaded.task.postprocessing.positive_probability(score[:, 1], test.sensitive[SEX])
    assert np.allclose(chance, optimizer._pmf_predict(score, sensitive_features=groups)[:, 1])
    assert not np.array_equal(loaded.predict(test), adult_mlp.predict(test))  # the thresholds changed decisions


def test_thresholds_shrink_a_planted_selection_gap(adult_mlp, adult_fit_and_test):
    validation, test = adult_fit_and_test
    fixed, _ = with_thresholds(adult_mlp, validation, column=SEX, constraint="demographic_parity", seed=0)
    before, after = selection_gap(adult_mlp.predict(test), test), selection_gap(fixed.predict(test), test)
    assert before > 0.1  # adult's labels differ by sex, and so does the model
    assert after < before / 2


def test_data_without_the_column_is_refused(adult_mlp, adult_fit_and_test):
    validation, test = adult_fit_and_test
    fixed, _ = with_thresholds(adult_mlp, validation, column=SEX, constraint="demographic_parity")
    without = audit.Dataset(test.inputs.drop(columns=[SEX]), test.labels, test.classes, "tabular",
                            sensitive=test.sensitive.drop(columns=[SEX]), name="test")
    with pytest.raises(AuditInputError, match="needs that column at prediction time"):
        fixed.predict(without)  # adult_mlp does not read sex: the inputs lack it too
    assert fixed.predict(test.inputs).shape == (len(test),)  # the column among a table's inputs is enough


@pytest.mark.parametrize("bad, message", [
    ({"rules": {"Male": {"p0": 2.0}}}, "exactly the fields"),
    ({"constraint": "luck"}, "constraint must be one of"),
    ({"seed": -1}, "seed must be an integer"),
    ({"code": "import os"}, "unknown field"),
])
def test_bad_postprocessing_section_is_refused_before_loading(adult_mlp, adult_fit_and_test, tmp_path, bad, message):
    fixed, _ = with_thresholds(adult_mlp, adult_fit_and_test[0], column=SEX, constraint="demographic_parity")
    payload = torch.load(checkpoint.save(fixed, tmp_path / "fixed.pt"), weights_only=True)
    payload["task"]["postprocessing"].update(bad)
    torch.save(payload, tmp_path / "bad.pt")
    with pytest.raises(AuditInputError, match=message):
        audit.load_model(tmp_path / "bad.pt")


def test_mitigate_command_writes_the_fix_and_gates_it(adult_mlp, adult_fit_and_test, tmp_path, capsys):
    validation, test = adult_fit_and_test
    original = checkpoint.save(adult_mlp, tmp_path / "model.pt")
    files = labelled_csvs(tmp_path, {"validation": validation, "test": test}, "income")
    policy = tmp_path / "policy.toml"
    policy.write_text('[gates."fairness.sex.demographic_parity_difference"]\nmax = 0.1\n')
    args = ["mitigate", str(original), "--method", "thresholds", "--sensitive", SEX, "--constraint",
            "demographic_parity", "-o", str(tmp_path / "fixed.pt"), "--validation", str(files["validation"]),
            "--data", str(files["test"]), "--target", "income", "--policy", str(policy), "--analyzers",
            "performance,fairness", "--report", str(tmp_path / "c.html"), "--json", str(tmp_path / "c.json"),
            "--markdown", str(tmp_path / "c.md"), "--quiet"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "needs the sensitive attribute 'sex' at prediction time" in out
    doc = json.loads((tmp_path / "c.json").read_text())
    changes = {row["metric"]: row for row in doc["changes"]}
    assert changes["fairness.sex.demographic_parity_difference"]["improved"] is True
    assert doc["candidate"]["model"]["postprocessing"]["column"] == SEX
    assert "needs the sensitive attribute" in (tmp_path / "c.html").read_text()
    assert "needs the sensitive attribute `sex` at prediction time" in (tmp_path / "c.md").read_text()
    assert audit.load_model(tmp_path / "fixed.pt").task.postprocessing is not None

    policy.write_text('[gates."fairness.sex.demographic_parity_difference"]\nmax = 0.0001\n')
    assert main([*args[:-1], "--quiet"]) == 1  # the fix does not pass this gate: the exit code says so

    no_sex = tmp_path / "no_sex.csv"
    pd.read_csv(files["test"]).drop(columns=[SEX]).to_csv(no_sex, index=False)
    (tmp_path / "fixed.pt").unlink()
    argv = [a if a != str(files["test"]) else str(no_sex) for a in args]
    assert main(argv) == 2
    assert "sex" in capsys.readouterr().err
    assert not (tmp_path / "fixed.pt").exists()  # all outputs or none
