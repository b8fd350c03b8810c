"""`audit.mitigate` is what `audit mitigate` does: the command only parses, calls it and writes its outputs."""

from __future__ import annotations

import json

import pytest
import torch
from planted import labelled_csvs

import audit
from audit.cli import main
from audit.io import checkpoint

SEX = "sex"
VOLATILE = ("seconds", "started", "command", "timings", "plan")  # wall time, clock and argv differ from call to call


def stable(document):
    if isinstance(document, dict):
        return {k: stable(v) for k, v in document.items() if k not in VOLATILE}
    if isinstance(document, list):
        return [stable(v) for v in document]
    return document


def plain(path) -> dict:
    payload = torch.load(path, weights_only=True)
    return {**payload, "state_dict": {k: v.tolist() for k, v in payload["state_dict"].items()}}


def test_mitigate_returns_what_the_command_writes(adult_mlp, adult_fit_and_test, tmp_path, capsys):
    validation, test = adult_fit_and_test
    original = checkpoint.save(adult_mlp, tmp_path / "model.pt")
    files = labelled_csvs(tmp_path, {"validation": validation, "test": test}, "income")
    fixed_path, json_path = tmp_path / "fixed.pt", tmp_path / "c.json"
    assert main(["mitigate", str(original), "--method", "thresholds", "--sensitive", SEX, "--constraint",
                 "demographic_parity", "-o", str(fixed_path), "--validation", str(files["validation"]), "--data",
                 str(files["test"]), "--target", "income", "--analyzers", "performance,fairness", "--report",
                 str(tmp_path / "c.html"), "--json", str(json_path), "--seed", "3", "--quiet"]) == 0
    printed = capsys.readouterr().out.splitlines()[0]

    mitigated = audit.mitigate(original, method="thresholds", sensitive=SEX, constraint="demographic_parity",
                               validation=files["validation"], data=files["test"], target="income",
                               analyzers=["performance", "fairness"], seed=3)
    assert printed == f"{mitigated.done} -> {fixed_path}"
    assert plain(checkpoint.save(mitigated.model, tmp_path / "api.pt")) == plain(fixed_path)
    saved = mitigated.saved_as({"path": str(fixed_path), "sha256": checkpoint.file_sha256(fixed_path)})
    assert stable(json.loads(saved.comparison.to_json())) == stable(json.loads(json_path.read_text()))
    # The comparison is of two different models: the thresholds changed the decisions.
    changes = {row["metric"]: row for row in saved.comparison.to_dict()["changes"]}
    assert changes["fairness.sex.demographic_parity_difference"]["improved"] is True

    other = audit.mitigate(original, method="thresholds", sensitive=SEX, constraint="demographic_parity",
                           validation=files["validation"], data=files["test"], target="income",
                           analyzers=["performance"], seed=4)
    assert other.model.task.postprocessing.seed != mitigated.model.task.postprocessing.seed


@pytest.mark.parametrize("kwargs, message", [
    ({"method": "thresholds", "sensitive": SEX}, "--method thresholds needs --constraint"),
    ({"method": "lagrangian"}, "--method lagrangian needs --sensitive COL"),
    ({"method": "pgd", "grid": "0,1"}, "go with --sweep"),
    ({"method": "thresholds", "sensitive": SEX, "constraint": "demographic_parity", "seed": -1}, "--seed must be"),
])
def test_mitigate_refuses_options_that_cannot_apply_before_loading(tmp_path, kwargs, message):
    with pytest.raises(audit.AuditInputError, match=message):
        audit.mitigate(tmp_path / "no-such-model.pt", **kwargs)
