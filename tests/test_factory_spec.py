"""Your own architecture from the command line: a model spec (TOML) naming a factory by import path, with
safetensors weights; reading either file runs no code from it."""

from __future__ import annotations

import json
import os
import pickle
import struct
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import audit
import tiny_resnet

FACTORY = "tiny_resnet:tiny_resnet"
# Small settings so every analyzer runs in seconds; the CLI and the API get the same ones.
OPTIONS = {"robustness": {"samples": 6, "sweep": [0.5], "steps": 3, "square_queries": 20, "apgd_steps": 3,
                          "apgd_targets": 1, "flip_refine": 1},
           "explanation_quality": {"cascade_stages": 2}}
SETS = [arg for analyzer, options in OPTIONS.items() for key, value in options.items()
        for arg in ("--set", f"{analyzer}.{key}={json.dumps(value)}")]


class Marker:
    """A pickle payload: unpickling it writes `path`."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.fixture(scope="module")
def net():
    return tiny_resnet.trained()


@pytest.fixture(scope="module")
def spec(net, tmp_path_factory):
    model = audit.wrap(net, modality="image", classes=tiny_resnet.CLASSES, input_shape=tiny_resnet.SHAPE)
    return audit.save_model(model, tmp_path_factory.mktemp("spec") / "resnet.toml", factory=FACTORY,
                            kwargs={"num_classes": 2, "width": 4})


@pytest.fixture(scope="module")
def npz(tmp_path_factory):
    return tiny_resnet.patch_npz(tmp_path_factory.mktemp("data") / "patches.npz")


def test_save_model_writes_a_spec_of_plain_data_and_safetensors_weights(spec):
    text = spec.read_text()
    assert 'factory = "tiny_resnet:tiny_resnet"' in text and 'weights = "resnet.safetensors"' in text
    assert "width = 4" in text and 'classes = ["plain", "patch"]' in text and "input_shape = [3, 8, 8]" in text
    assert spec.with_suffix(".safetensors").read_bytes()[8:9] == b"{"  # a JSON header, then raw tensors


def test_the_spec_loads_the_same_module(net, spec):
    model = audit.load_model(spec)
    x = torch.from_numpy(tiny_resnet.patch_data(n=8, seed=2)[0])
    torch.testing.assert_close(model.module(x), net(x), rtol=0, atol=0)
    assert model.module_name == "TinyResNet" and model.source["factory"] == FACTORY


@pytest.mark.filterwarnings("error::UserWarning")  # no torch warning reaches the user
def test_every_analyzer_runs_from_the_cli_with_the_api_numbers(net, spec, npz, tmp_path, capsys):
    out = tmp_path / "r.json"
    code, err = tiny_resnet.report(capsys, spec, "--data", npz, "--samples", 6, *SETS, "-o", tmp_path / "r.html",
                       "--json", out)
    assert code in (0, 1), err
    doc = json.loads(out.read_text())
    results = doc["results"]
    assert set(results) == {"performance", "saliency", "shap", "lime", "explanation_quality", "robustness",
                            "fairness", "slices"}
    assert all(r["status"] == "ok" for r in results.values()), {n: r.get("error") for n, r in results.items()}
    assert '"grad_cam"' in json.dumps(results["saliency"])  # the convolution is found: Grad-CAM runs
    model = audit.wrap(net, modality="image", classes=tiny_resnet.CLASSES, input_shape=tiny_resnet.SHAPE)
    api = audit.run(model, audit.read_data(npz), samples=6, options=OPTIONS).to_dict()
    assert doc["metrics"] == api["metrics"]
    assert doc["metrics"]["performance.accuracy"] > 0.9  # the patch is learnt: the numbers mean something


def bad_spec(tmp_path, text: str, weights: dict | None = None):
    path = tmp_path / "m.toml"
    path.write_text(text)
    save_file(weights if weights is not None else tiny_resnet.tiny_resnet().state_dict(),
              str(tmp_path / "m.safetensors"))
    return path


TASK = '[task]\nmodality = "image"\nclasses = ["a", "b"]\n'


@pytest.mark.parametrize("factory", ["os:system", "subprocess:run", "builtins:eval", "torch.hub:load", "torch:load",
                                     "numpy:load", "pandas:read_pickle", "audit.io.checkpoint:read",
                                     "tiny_resnet:_private", "tiny_resnet.tiny_resnet", "tiny_resnet:a.b",
                                     "tiny resnet:x", "__import__('os'):system"])
def test_a_factory_that_is_not_a_builder_of_yours_is_refused_before_any_import(factory, tmp_path, capsys):
    path = bad_spec(tmp_path, f'factory = {json.dumps(factory)}\nweights = "m.safetensors"\n{TASK}')
    code, err = tiny_resnet.report(capsys, path, "-o", tmp_path / "r.html")
    assert code == 2 and "\n" not in err and "factory" in err, err


def test_a_safetensors_file_holding_a_pickle_is_refused_and_runs_nothing(tmp_path, capsys):
    path = bad_spec(tmp_path, f'factory = "{FACTORY}"\nweights = "m.safetensors"\n{TASK}')
    marker = tmp_path / "ran"
    (tmp_path / "m.safetensors").write_bytes(pickle.dumps(Marker(marker)))
    code, err = tiny_resnet.report(capsys, path, "-o", tmp_path / "r.html")
    assert code == 2 and "m.safetensors is not a safetensors file" in err and "\n" not in err, err
    assert not marker.exists()
    torch.save({"w": Marker(marker)}, tmp_path / "m.safetensors")  # torch's zip pickle, renamed
    assert tiny_resnet.report(capsys, path, "-o", tmp_path / "r.html")[0] == 2
    assert not marker.exists()


def test_safetensors_metadata_is_never_unpickled(tmp_path, capsys, net):
    marker = tmp_path / "ran"
    path = bad_spec(tmp_path, f'factory = "{FACTORY}"\nweights = "m.safetensors"\n{TASK}')
    save_file(net.state_dict(), str(tmp_path / "m.safetensors"),
              metadata={"format": pickle.dumps(Marker(marker)).decode("latin-1")})
    assert audit.load_model(path).classes == ("a", "b")
    assert not marker.exists()


def test_a_header_declaring_more_bytes_than_the_file_holds_is_refused(tmp_path, capsys):
    path = bad_spec(tmp_path, f'factory = "{FACTORY}"\nweights = "m.safetensors"\n{TASK}')
    header = json.dumps({"fc.weight": {"dtype": "F32", "shape": [1 << 20, 1 << 20], "data_offsets": [0, 1 << 42]}})
    (tmp_path / "m.safetensors").write_bytes(struct.pack("<Q", len(header)) + header.encode())
    code, err = tiny_resnet.report(capsys, path, "-o", tmp_path / "r.html")
    assert code == 2 and "is not a safetensors file" in err, err


def test_weights_that_do_not_fit_say_each_problem(tmp_path, capsys):
    weights = tiny_resnet.tiny_resnet().state_dict()
    del weights["fc.bias"]
    weights["extra.weight"] = torch.zeros(2)
    weights["fc.weight"] = torch.zeros(3, 4)
    path = bad_spec(tmp_path, f'factory = "{FACTORY}"\nweights = "m.safetensors"\n{TASK}', weights)
    code, err = tiny_resnet.report(capsys, path, "-o", tmp_path / "r.html")
    assert code == 2 and "\n" not in err, err
    assert "missing fc.bias" in err and "unexpected extra.weight" in err
    assert "fc.weight is (3, 4), the module needs (2, 4)" in err


def test_weights_of_another_width_are_refused_by_their_shapes(net, spec, tmp_path, capsys):
    text = spec.read_text().replace("width = 4", "width = 6")
    (tmp_path / "resnet.toml").write_text(text)
    (tmp_path / "resnet.safetensors").write_bytes(spec.with_suffix(".safetensors").read_bytes())
    code, err = tiny_resnet.report(capsys, tmp_path / "resnet.toml", "-o", tmp_path / "r.html")
    assert code == 2 and "the module needs (6," in err, err


@pytest.mark.parametrize("text, message", [
    (f'factory = "{FACTORY}"\nweights = "m.safetensors"\n', "task missing"),
    (f'factory = "{FACTORY}"\nweights = "/etc/m.safetensors"\n{TASK}', "named relative to the spec"),
    (f'factory = "{FACTORY}"\nweights = "m.pt"\n{TASK}', "must be a .safetensors file"),
    (f'factory = "{FACTORY}"\nweights = "m.safetensors"\ncode = "x"\n{TASK}', "unknown key(s) code"),
    (f'factory = "{FACTORY}"\nweights = "m.safetensors"\n[kwargs]\nwidth = 100000\n{TASK}', "above the limit of"),
    (f'factory = "{FACTORY}"\nweights = "m.safetensors"\n[kwargs]\ndepth = 3\n{TASK}', "factory"),
    (f'factory = "not_installed_pkg.nets:resnet"\nweights = "m.safetensors"\n{TASK}',
     "no module named 'not_installed_pkg'"),
    (f'factory = "tiny_resnet:no_such"\nweights = "m.safetensors"\n{TASK}', "has no function 'no_such'"),
    (f'factory = "tiny_resnet:SHAPE"\nweights = "m.safetensors"\n{TASK}', "has no function 'SHAPE'"),
    (f'factory = "tiny_resnet:patch_data"\nweights = "m.safetensors"\n{TASK}', "not a torch.nn.Module"),
    (f'factory = "{FACTORY}"\nweights = "m.safetensors"\n[task]\nmodality = "text"\nclasses = ["a", "b"]\n',
     "task.modality"),
    ('architecture = "cnn"\ndataset = "digits"\n', "a training spec"),
    ("factory = [", "not a TOML model spec"),
])
def test_a_bad_spec_is_one_line(text, message, tmp_path, capsys):
    code, err = tiny_resnet.report(capsys, bad_spec(tmp_path, text), "-o", tmp_path / "r.html")
    assert code == 2 and message in err and "\n" not in err, err


def test_the_task_flags_do_not_override_a_spec(spec, tmp_path, capsys):
    code, err = tiny_resnet.report(capsys, spec, "--modality", "image", "--classes", "x", "y", "-o", tmp_path / "r.html")
    assert code == 2 and "has its own [task]" in err, err


def test_a_model_the_spec_cannot_describe_is_refused_by_save_model(net, tmp_path):
    model = audit.wrap(net, modality="image", classes=["a", "b"], extra_inputs=lambda x: {})
    with pytest.raises(audit.AuditInputError, match="extra_inputs"):
        audit.save_model(model, tmp_path / "m.toml", factory=FACTORY)
    with pytest.raises(audit.AuditInputError, match="factory"):
        audit.save_model(audit.wrap(net, modality="image", classes=["a", "b"]), tmp_path / "m.toml",
                         factory="os:system")
    with pytest.raises(audit.AuditInputError, match="save your own module as a model spec"):
        audit.save_model(audit.wrap(net, modality="image", classes=["a", "b"]), tmp_path / "m.pt")


def test_normalisation_and_layout_round_trip(net, tmp_path):
    model = audit.wrap(net, modality="image", classes=["a", "b"], mean=[0.5, 0.4, 0.3], std=[0.2, 0.25, 0.3])
    loaded = audit.load_model(audit.save_model(model, tmp_path / "m.toml", factory=FACTORY))
    x = torch.from_numpy(tiny_resnet.patch_data(n=4)[0])
    torch.testing.assert_close(loaded.module(x), model.module(x), rtol=0, atol=0)
    plain = audit.wrap(net, modality="image", classes=["a", "b"])
    assert not torch.equal(plain.module(x), model.module(x))  # the normalisation made a difference


def test_the_factory_comes_from_the_environment_of_the_command(spec, npz, tmp_path):
    """The issue's user story in a fresh process: the factory's module is found on PYTHONPATH, else one line
    says how to make it importable."""
    root, tests = Path(audit.__file__).parents[1], Path(tiny_resnet.__file__).parent
    command = [sys.executable, "-m", "audit", "report", str(spec), "--data", str(npz), "--analyzers", "performance",
               "-o", str(tmp_path / "r.html"), "--quiet"]
    without = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300,
                             env={**os.environ, "PYTHONPATH": str(root)})
    assert without.returncode == 2, without.stderr
    assert without.stderr.strip().count("\n") == 0 and "no module named 'tiny_resnet'" in without.stderr
    assert "set PYTHONPATH" in without.stderr
    found = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300,
                           env={**os.environ, "PYTHONPATH": os.pathsep.join([str(root), str(tests)])})
    assert found.returncode == 0 and not found.stderr.strip(), found.stderr
