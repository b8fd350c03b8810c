""".pt2 ExportedPrograms as model files: a user's own ResNet (in-place ReLU, residual `+=`, BatchNorm) exported,
audited from the CLI like the eager module through the API, and archives that would run code refused."""

from __future__ import annotations

import io
import json
import os
import pickle
import warnings
import zipfile

import numpy as np
import pytest
import torch
from torch import nn

import audit
from audit._util.errors import UnsafeCheckpointError
from audit.cli import main
from audit.io import exported
from audit.models.checkpoint import load

SAMPLES = "12"


class Block(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        out = self.bn(self.conv(x))
        out += x
        return self.relu(out)


class TinyResNet(nn.Module):
    """The issue's user model, sized for the shipped 1x8x8 digits."""

    def __init__(self, classes: int = 10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(inplace=True))
        self.block = Block(8)
        self.head = nn.Linear(8, classes)

    def forward(self, x):
        return self.head(torch.flatten(nn.functional.adaptive_avg_pool2d(self.block(self.stem(x)), 1), 1))


@pytest.fixture(scope="module")
def digits():
    return audit.load_dataset("digits", "train"), audit.load_dataset("digits", "test")


@pytest.fixture(scope="module")
def resnet(digits):
    """The user's ResNet trained a few steps on digits, wrapped as the API takes it."""
    train, _ = digits
    torch.manual_seed(0)
    net = TinyResNet()
    x, y = torch.as_tensor(train.inputs, dtype=torch.float32), torch.as_tensor(train.labels)
    optimiser = torch.optim.Adam(net.parameters(), lr=0.01)
    for step in range(40):
        rows = slice(step % 10 * 120, step % 10 * 120 + 120)
        optimiser.zero_grad()
        nn.functional.cross_entropy(net(x[rows]), y[rows]).backward()
        optimiser.step()
    return audit.wrap(net.eval(), modality="image", classes=train.classes, input_shape=(1, 8, 8), device="cpu")


@pytest.fixture(scope="module")
def pt2(resnet, tmp_path_factory):
    return audit.save_exported(resnet, tmp_path_factory.mktemp("pt2") / "resnet.pt2")


def test_exported_resnet_predicts_as_the_eager_module(resnet, pt2, digits):
    _, test = digits
    loaded = load(pt2)
    assert loaded.architecture == "exported" and loaded.task.to_dict() == resnet.task.to_dict()
    np.testing.assert_array_equal(loaded.predict_proba(test), resnet.predict_proba(test))
    assert [type(m) for m in loaded.module.modules() if isinstance(m, nn.Conv2d)] == [nn.Conv2d] * 2


def test_cli_audits_the_pt2_like_the_api_the_eager_module(resnet, pt2, tmp_path, capsys):
    json_path = tmp_path / "r.json"
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)  # torch deprecations, e.g. copying pytree specs
        warnings.simplefilter("error", UserWarning)  # e.g. "non-leaf Tensor .grad"
        code = main(["report", str(pt2), "--dataset", "digits", "-o", str(tmp_path / "r.html"), "--json",
                     str(json_path), "--samples", SAMPLES, "--quiet"])
    err = capsys.readouterr().err
    assert code in (0, 1), err
    assert "Warning" not in err
    doc = json.loads(json_path.read_text())
    api = audit.run(resnet, audit.load_dataset("digits", "test"), samples=int(SAMPLES))
    statuses = {name: r["status"] for name, r in doc["results"].items()}
    assert statuses == {r.analyzer: r.status for r in api.results}
    assert "error" not in statuses.values() and statuses["explanation_quality"] == statuses["saliency"] == "ok"
    assert "saliency.grad_cam.top_feature_share" in doc["metrics"] and not doc["results"]["saliency"]["warnings"]
    assert set(doc["metrics"]) == set(api.metrics), set(doc["metrics"]) ^ set(api.metrics)
    assert doc["metrics"] == pytest.approx(api.metrics, nan_ok=True)


def test_sidecar_gives_the_task_of_a_program_exported_by_hand(resnet, tmp_path, digits):
    program = torch.export.export(resnet.module.cpu().eval(), (torch.rand(2, 1, 8, 8),),
                                  dynamic_shapes=({0: torch.export.Dim("batch", min=1)},))
    path = tmp_path / "own.pt2"
    torch.export.save(program, path)
    with pytest.raises(audit.AuditInputError, match="without the task") as info:
        load(path)
    assert "\n" not in str(info.value)
    assert exported.write_task(resnet, path) == exported.task_sidecar(path) == tmp_path / "own.pt2.task.json"
    np.testing.assert_array_equal(load(path).predict_proba(digits[1]), resnet.predict_proba(digits[1]))


def test_task_given_by_the_caller_wins_with_its_input_adapter(resnet, tmp_path, digits):
    """A program that reads normalised pixels: mean and std given with the task make it read raw ones."""
    program = torch.export.export(resnet.module.inner.cpu().eval(), (torch.rand(2, 1, 8, 8),),
                                  dynamic_shapes=({0: torch.export.Dim("batch", min=1)},))
    path = tmp_path / "normalised.pt2"
    torch.export.save(program, path)
    model = exported.load(path, task=resnet.task, mean=[0.5], std=[2.0])
    x = torch.rand(3, 1, 8, 8)
    torch.testing.assert_close(model.module(x), resnet.module.inner((x - 0.5) / 2.0))


# -- archives that would run code from the file ----------------------------------------------------------


class WritesFile:
    """Unpickling this calls os.system, which writes a marker file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, (f"echo pwned > {self.marker}",)


def rewritten(path, out, edit):
    """`path`'s archive with `edit(entries)` applied to its {relative name: bytes}."""
    with zipfile.ZipFile(path) as archive:
        root = archive.namelist()[0].split("/", 1)[0] + "/"
        entries = {n[len(root):]: archive.read(n) for n in archive.namelist()}
    edit(entries)
    with zipfile.ZipFile(out, "w") as archive:
        for name, data in entries.items():
            archive.writestr(root + name, data)
    return out


def pickled_weight(marker):
    def edit(entries):
        config = json.loads(entries["data/weights/model_weights_config.json"])
        first = next(iter(config["config"]))
        config["config"][first]["use_pickle"] = True
        path_name = config["config"][first]["path_name"]
        entries["data/weights/model_weights_config.json"] = json.dumps(config).encode()
        buffer = io.BytesIO()
        torch.save({"x": WritesFile(marker)}, buffer)
        entries["data/weights/" + path_name] = buffer.getvalue()
    return edit


def opaque_constant(marker):
    def edit(entries):
        entries["data/constants/model_constants_config.json"] = json.dumps({"config": {"c": {
            "path_name": "opaque_obj_0", "is_param": False, "use_pickle": True, "tensor_meta": None}}}).encode()
        entries["data/constants/opaque_obj_0"] = pickle.dumps(WritesFile(marker))
    return edit


def sample_inputs(marker):
    def edit(entries):
        buffer = io.BytesIO()
        torch.save(((WritesFile(marker),), {}), buffer)
        entries["data/sample_inputs/model.pt"] = buffer.getvalue()
    return edit


def graph_edit(change):
    def edit(entries):
        program = json.loads(entries["models/model.json"])
        change(program)
        entries["models/model.json"] = json.dumps(program).encode()
    return edit


def os_system_target(marker):
    def change(program):
        node = program["graph_module"]["graph"]["nodes"][-1]
        node["target"] = "torch.os.system"
        node["inputs"] = [{"name": "command", "arg": {"as_string": f"echo pwned > {marker}"}, "kind": 1}]
    return graph_edit(change)


def sympy_eval(marker):
    def change(program):
        def walk(value):
            if isinstance(value, dict):
                if "expr_str" in value:
                    value["expr_str"] = f"__import__('os').system('echo pwned > {marker}')"
                for item in value.values():
                    walk(item)
            elif isinstance(value, list):
                for item in value:
                    walk(item)
        walk(program)
    return graph_edit(change)


def guards_code(marker):
    def change(program):
        program["guards_code"] = [f"__import__('os').system('echo pwned > {marker}') == 0"]
    return graph_edit(change)


def aoti_library(marker):
    def edit(entries):
        entries["data/aotinductor/model/model.so"] = b"\x7fELF"
    return edit


PAYLOADS = {
    "pickled weight": (pickled_weight, "weight .* is a pickled object"),
    "opaque constant": (opaque_constant, "constant c is a pickled object"),
    "pickled sample inputs": (sample_inputs, "sample inputs are pickled objects"),
    "node target outside ATen": (os_system_target, "node target torch.os.system"),
    "shape expression": (sympy_eval, "shape expression"),
    "guards code": (guards_code, "guards code"),
    "compiled library": (aoti_library, "entry data/aotinductor/model/model.so"),
}


@pytest.mark.parametrize("kind", PAYLOADS)
def test_pt2_that_would_run_code_is_refused_and_runs_nothing(pt2, tmp_path, capsys, kind):
    marker = tmp_path / "marker.txt"
    make, reason = PAYLOADS[kind]
    path = rewritten(pt2, tmp_path / "evil.pt2", make(marker))
    with pytest.raises(UnsafeCheckpointError, match=reason) as info:
        load(path)
    assert "--trust-code" in str(info.value) and "\n" not in str(info.value)
    code = main(["report", str(path), "--dataset", "digits", "-o", str(tmp_path / "r.html"), "--quiet"])
    assert code == 2 and "--trust-code" in capsys.readouterr().err
    assert not marker.exists()


def test_trusted_pt2_with_pickled_sample_inputs_runs_them(pt2, tmp_path):
    """The refusal above is what kept the marker away: torch itself unpickles these inputs."""
    marker = tmp_path / "marker.txt"
    path = rewritten(pt2, tmp_path / "evil.pt2", sample_inputs(marker))
    try:
        load(path, trust_code=True)
    except audit.AuditInputError:
        pass  # the payload is no tuple of tensors; it ran while torch read it
    assert marker.exists()


def test_unchanged_rewrite_still_loads(pt2, tmp_path, digits):
    """The payload tests edit a file that is otherwise accepted (the edit, not the rewriting, is refused)."""
    path = rewritten(pt2, tmp_path / "same.pt2", lambda entries: None)
    np.testing.assert_array_equal(load(path).predict_proba(digits[1]), load(pt2).predict_proba(digits[1]))


@pytest.mark.parametrize("content, message", [
    (b"PK\x05\x06" + b"\x00" * 18, "missing"),
    (b"not a zip", None),
])
def test_damaged_pt2_is_one_line(tmp_path, content, message):
    path = tmp_path / "bad.pt2"
    path.write_bytes(content)
    with pytest.raises(audit.AuditInputError) as info:
        exported.load(path)
    assert "\n" not in str(info.value)


def test_weights_above_the_limit_are_refused_before_loading(pt2, monkeypatch):
    monkeypatch.setattr(torch.export, "load", lambda *a, **k: pytest.fail("loaded"))
    with pytest.raises(audit.AuditInputError, match="above the limit of 100"):
        load(pt2, max_parameters=100)


def listed_expression(marker):
    """A shape expression that is a list: sympify would parse (eval) the string inside it."""
    def change(program):
        program["graph_module"]["graph"]["sym_int_values"] = {"s1": {"as_expr": {"expr_str": [
            f"__import__('os').system('echo pwned > {marker}')"], "hint": None}}}
    return graph_edit(change)


@pytest.mark.parametrize("edit", [
    lambda entries: entries.update({"data/weights/model_weights_config.json": b'{"config": [1, 2]}'}),
    lambda entries: entries.update({"models/model.json": b"[1]"}),
    lambda entries: entries.pop("models/model.json"),
])
def test_pt2_metadata_of_another_shape_is_one_line(pt2, tmp_path, edit):
    path = rewritten(pt2, tmp_path / "odd.pt2", edit)
    with pytest.raises(audit.AuditInputError) as info:
        load(path)
    assert "not a readable .pt2" in str(info.value) and "\n" not in str(info.value)


def test_shape_expression_that_is_no_string_is_refused(pt2, tmp_path):
    marker = tmp_path / "marker.txt"
    with pytest.raises(UnsafeCheckpointError, match="shape expression"):
        load(rewritten(pt2, tmp_path / "evil.pt2", listed_expression(marker)))
    assert not marker.exists()


def test_registry_model_exports_and_predicts_the_same(digits_cnn, tmp_path, digits):
    path = audit.save_exported(digits_cnn, tmp_path / "cnn.pt2")
    np.testing.assert_array_equal(load(path).predict_proba(digits[1]), digits_cnn.predict_proba(digits[1]))
