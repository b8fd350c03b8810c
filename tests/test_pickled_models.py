"""Pickled modules with --trust-code: a class Python cannot import is one line with the fix, and a module that
does not say what it reads takes its task from the command line's task flags."""

from __future__ import annotations

import importlib
import json
import pickle
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

import audit
import tiny_resnet
from audit.io import checkpoint


@pytest.fixture(scope="module")
def net():
    return tiny_resnet.trained()


@pytest.fixture(scope="module")
def pickled(net, tmp_path_factory):
    path = tmp_path_factory.mktemp("pickled") / "resnet.pt"
    torch.save(net, path)
    return path


@pytest.fixture(scope="module")
def npz(tmp_path_factory):
    return tiny_resnet.patch_npz(tmp_path_factory.mktemp("data") / "patches.npz")


TASK = ["--modality", "image", "--classes", *tiny_resnet.CLASSES, "--input-shape", *map(str, tiny_resnet.SHAPE)]


def test_a_pickled_module_takes_its_task_from_the_flags(net, pickled, npz, tmp_path, capsys):
    out = tmp_path / "r.json"
    code, err = tiny_resnet.report(capsys, pickled, "--trust-code", *TASK, "--data", npz, "--analyzers", "performance,saliency",
                       "--samples", 4, "-o", tmp_path / "r.html", "--json", out)
    assert code == 0, err
    doc = json.loads(out.read_text())
    assert all(r["status"] == "ok" for r in doc["results"].values())
    model = audit.wrap(net, modality="image", classes=tiny_resnet.CLASSES, input_shape=tiny_resnet.SHAPE)
    api = audit.run(model, audit.read_data(npz), analyzers=["performance", "saliency"], samples=4).to_dict()
    assert doc["metrics"] == api["metrics"] and doc["metrics"]["performance.accuracy"] > 0.9


def test_a_pickled_module_without_a_task_names_the_flags(pickled, tmp_path, capsys):
    code, err = tiny_resnet.report(capsys, pickled, "--trust-code", "-o", tmp_path / "r.html")
    assert code == 2 and "\n" not in err, err
    assert "a pickled TinyResNet that does not say what it reads" in err and "--modality" in err
    assert "audit.wrap" not in err  # no longer a dead end that sends a CI job to Python


def test_a_pickle_is_still_refused_without_trust_and_runs_nothing(tmp_path, capsys):
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    path = tmp_path / "payload.pt"
    torch.save({"x": Payload()}, path)
    code, err = tiny_resnet.report(capsys, path, *TASK, "-o", tmp_path / "r.html")
    assert code == 2 and "--trust-code" in err and not marker.exists(), err


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    """A module `usernet` in a folder of its own, importable while the fixture's caller saves with it."""
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "usernet.py").write_text(
        "from torch import nn\n\n\nclass Net(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        "        self.fc = nn.Linear(3, 2)\n\n    def forward(self, x):\n        return self.fc(x)\n")
    monkeypatch.syspath_prepend(str(folder))
    yield importlib.import_module("usernet"), folder
    sys.modules.pop("usernet", None)


def test_a_class_python_cannot_import_is_one_line_with_the_fix(user_module, tmp_path, capsys, monkeypatch):
    usernet, folder = user_module
    path = tmp_path / "net.pt"
    torch.save(usernet.Net(), path)
    monkeypatch.delitem(sys.modules, "usernet")
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p != str(folder)])
    code, err = tiny_resnet.report(capsys, path, "--trust-code", "--modality", "tabular", "--classes", "a", "b",
                       "-o", tmp_path / "r.html")
    assert code == 2 and "\n" not in err, err
    assert "internal error" not in err and "module 'usernet'" in err and "PYTHONPATH" in err
    monkeypatch.syspath_prepend(str(folder))  # the fix the line names
    model = audit.load_model(path, trust_code=True, task={"modality": "tabular", "classes": ["a", "b"]})
    assert type(model.module.inner).__name__ == "Net"


def test_a_class_gone_from_its_module_is_one_line(user_module, tmp_path, capsys):
    usernet, _ = user_module
    path = tmp_path / "net.pt"
    torch.save(usernet.Net(), path)
    del usernet.Net
    code, err = tiny_resnet.report(capsys, path, "--trust-code", "--modality", "tabular", "--classes", "a", "b",
                       "-o", tmp_path / "r.html")
    assert code == 2 and "\n" not in err and "the pickled model's class is not where it was saved" in err, err


def test_a_tabular_module_reads_the_named_features(tmp_path, capsys):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(2, 2))
    path = tmp_path / "tab.pt"
    torch.save(net, path)
    model = audit.load_model(path, trust_code=True,
                             task={"modality": "tabular", "classes": ["no", "yes"], "feature_names": ["b", "a"]})
    data = audit.Dataset.from_dataframe(pd.DataFrame({"a": [1.0, 2.0], "b": [5.0, 7.0], "y": ["no", "yes"]}),
                                        target="y")
    x = torch.tensor([[5.0, 1.0], [7.0, 2.0]])
    np.testing.assert_allclose(model.predict_proba(data), torch.softmax(net(x), 1).detach().numpy(), rtol=1e-6)


@pytest.mark.parametrize("flags, message", [
    (["--classes", "a", "b"], "give --modality too"),
    (["--modality", "image"], "give --classes too"),
    (["--modality", "image", "--classes", "a"], "at least two distinct names"),
    (["--modality", "image", "--classes", "a", "b", "--mean", "0.5"], "mean and std are given together"),
    (["--modality", "tabular", "--classes", "a", "b", "--layout", "NHWC"], "layout describe images"),
    (["--modality", "image", "--classes", "a", "b", "--feature-names", "x"], "feature_names describe tables"),
    (["--modality", "image", "--classes", "a", "b", "--mean", "0", "--std", "0"], "task.std"),
    (["--modality", "text", "--classes", "a", "b"], "invalid choice: 'text'"),
])
def test_bad_task_flags_are_one_line(flags, message, pickled, tmp_path, capsys):
    code, err = tiny_resnet.report(capsys, pickled, "--trust-code", *flags, "-o", tmp_path / "r.html")
    assert code == 2 and message in err and "\n" not in err, err


def test_the_task_flags_do_not_override_a_file_that_has_a_task(digits_cnn, tmp_path, capsys):
    path = checkpoint.save(digits_cnn, tmp_path / "digits.pt")
    code, err = tiny_resnet.report(capsys, path, "--modality", "image", "--classes", "a", "b", "-o", tmp_path / "r.html")
    assert code == 2 and "carries its own task; drop the task options" in err, err


class Announces:
    """Unpickles into a call: a trusted pickle's code runs (by design), then it is no torch file."""

    def __reduce__(self):
        return print, ("payload ran",)


@pytest.mark.parametrize("protocol", [2, 5])
def test_a_trusted_pickle_that_is_no_torch_file_is_one_line(tmp_path, capsys, protocol):
    """A raw pickle (no torch zip, no torch magic number) with --trust-code. Protocol 2 ran its payload and then
    exited 4 ('RuntimeError: Invalid magic number') before."""
    path = tmp_path / "raw.pt"
    path.write_bytes(pickle.dumps(Announces(), protocol=protocol))
    code, err = tiny_resnet.report(capsys, path, "--trust-code", "--dataset", "adult", "-o", tmp_path / "r.html")
    assert code == 2 and "\n" not in err and "raw.pt: not a model checkpoint" in err, err
    assert not (tmp_path / "r.html").exists()
