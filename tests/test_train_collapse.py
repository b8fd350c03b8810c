"""`audit train` warns when the trained model predicts one class for nearly every validation row (it barely tells
the classes apart, as default training on German-credit-like data does), and exits 1 with --strict."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from audit.analyzers.fairness.groups import DEGENERATE_SHARE
from audit.cli import main


def table(path, *, signal: bool):
    """400 rows: with `signal` the balanced label is a function of x1; without it, 92% "good" whatever the inputs."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 3))
    if signal:
        label = np.where(x[:, 0] > 0, "bad", "good")
    else:
        label = np.where(rng.random(400) < 0.92, "good", "bad")
    pd.DataFrame({"x1": x[:, 0], "x2": x[:, 1], "x3": x[:, 2], "risk": label}).to_csv(path, index=False)
    return path


def train(capsys, tmp_path, data, *extra):
    code = main(["train", "mlp", "--data", str(data), "--target", "risk", "-o", str(tmp_path / "m.pt"),
                 "--epochs", "3", "--quiet", *extra])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("strict", [False, True])
def test_a_model_that_predicts_one_class_is_warned_about_and_fails_under_strict(capsys, tmp_path, strict):
    data = table(tmp_path / "credit.csv", signal=False)
    code, out, err = train(capsys, tmp_path, data, *(["--strict"] if strict else []))
    assert code == (1 if strict else 0)
    assert "test accuracy" in out and (tmp_path / "m.pt").exists()
    warning = err.strip()
    assert warning.startswith("warning: the trained model predicts 'good' for ")
    assert "of the 60 validation rows" in warning
    share = float(warning.split(" for ")[1].split("%")[0]) / 100
    assert DEGENERATE_SHARE <= share <= 1
    assert "Traceback" not in err


def test_a_model_that_tells_the_classes_apart_trains_quietly_even_under_strict(capsys, tmp_path):
    data = table(tmp_path / "separable.csv", signal=True)
    code, out, err = train(capsys, tmp_path, data, "--strict")
    assert code == 0, err
    assert "warning" not in err
