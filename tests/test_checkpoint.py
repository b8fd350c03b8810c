"""Checkpoints: plain-data round trip, TorchScript, and refusal of pickles that would run code."""

from __future__ import annotations

import io
import json
import math
import os
import pickle
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

import audit
import hostile
from audit.io import checkpoint
from audit.models.checkpoint import load
from audit.models.registry import MODELS
from audit.cli import main
from audit._util.errors import UnsafeCheckpointError

ROOT = Path(__file__).resolve().parents[1]


class WritesFile:
    """Unpickling this calls os.system, which writes a marker file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, (f"echo pwned > {self.marker}",)


def test_round_trip_gives_identical_predictions(digits_cnn, tmp_path):
    data = audit.load_dataset("digits", "test")
    path = checkpoint.save(digits_cnn, tmp_path / "m.pt")
    again = load(path)
    np.testing.assert_array_equal(again.predict_proba(data), digits_cnn.predict_proba(data))
    assert again.task.to_dict() == digits_cnn.task.to_dict()
    assert again.source["sha256"] == checkpoint.file_sha256(path)


def test_checkpoint_is_plain_data_loaded_with_weights_only(digits_cnn, tmp_path, monkeypatch):
    path = checkpoint.save(digits_cnn, tmp_path / "m.pt")
    seen = []
    real_load = torch.load

    def spy(*args, **kwargs):
        seen.append(kwargs.get("weights_only"))
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    load(path)
    assert seen == [True]
    with zipfile.ZipFile(path) as archive:
        data_pkl = next(n for n in archive.namelist() if n.endswith("data.pkl"))
        opcodes = archive.read(data_pkl)
    # Only torch's tensor rebuild helpers and collections.OrderedDict are referenced; no other classes.
    globals_used = {line.split(b"\n")[0] for line in opcodes.split(b"\x8c") if line[:1].isalpha()}
    assert not any(b"audit" in g for g in globals_used)


@pytest.mark.parametrize("payload_kind", ["whole-object", "inside-dict"])
def test_pickle_that_runs_code_is_refused_and_runs_nothing(tmp_path, payload_kind):
    marker = tmp_path / "marker.txt"
    payload = WritesFile(marker)
    obj = payload if payload_kind == "whole-object" else {"format": checkpoint.FORMAT, "task": payload}
    path = tmp_path / "evil.pt"
    torch.save(obj, path)
    with pytest.raises(UnsafeCheckpointError, match="--trust-code"):
        load(path)
    assert not marker.exists()


def test_legacy_pickle_file_is_refused(tmp_path):
    marker = tmp_path / "marker.txt"
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps(WritesFile(marker)))
    with pytest.raises(audit.AuditInputError):
        load(path)
    assert not marker.exists()


def test_pickled_module_loads_only_when_trusted(tmp_path, adult_mlp):
    module = adult_mlp.module
    module.audit_task = adult_mlp.task.to_dict()
    path = tmp_path / "pickled.pt"
    try:
        torch.save(module, path)
    finally:
        del module.audit_task
    with pytest.raises(UnsafeCheckpointError, match="trust_code=True"):
        load(path)
    trusted = load(path, trust_pickle=True)
    data = audit.load_dataset("adult", "test").sample(100, seed=0)
    np.testing.assert_allclose(trusted.predict_proba(data), adult_mlp.predict_proba(data))


@pytest.mark.parametrize("content", [b"", b"\x00" * 10, os.urandom(4096), b"PK\x03\x04 truncated zip"])
def test_garbage_is_not_a_checkpoint(tmp_path, content):
    path = tmp_path / "junk.pt"
    path.write_bytes(content)
    with pytest.raises(audit.AuditInputError, match="junk.pt"):
        load(path)


def test_truncated_checkpoint_is_refused(digits_cnn, tmp_path):
    path = checkpoint.save(digits_cnn, tmp_path / "m.pt")
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(audit.AuditInputError, match="not a model checkpoint"):
        load(path)


def torchscript_file(model, path, example):
    """A traced TorchScript archive of `model` carrying its task, as users made them before .pt2 files."""
    traced = torch.jit.trace(model.module.cpu().eval(), example)
    torch.jit.save(traced, str(path), _extra_files={checkpoint.TASK_FILE: json.dumps(model.task.to_dict())})
    return path


def test_torchscript_round_trip(reviews_lstm, tmp_path):
    data = audit.load_dataset("reviews", "test").sample(50, seed=1)
    example = reviews_lstm.encode(data)  # full length: TorchScript modules get untrimmed ids
    path = torchscript_file(reviews_lstm, tmp_path / "m.ts", example)
    with pytest.raises(UnsafeCheckpointError, match="TorchScript"):
        load(path)
    loaded = load(path, trust_code=True)
    assert loaded.architecture == "torchscript"
    np.testing.assert_allclose(loaded.predict_proba(data), reviews_lstm.predict_proba(data), atol=1e-5)


def test_torchscript_without_task_is_explained(tmp_path):
    scripted = torch.jit.script(torch.nn.Linear(3, 2))
    path = tmp_path / "bare.ts"
    torch.jit.save(scripted, str(path))
    with pytest.raises(audit.AuditInputError, match="without audit task metadata"):
        load(path, trust_code=True)


def test_wrapped_user_module_cannot_be_saved_as_registry_checkpoint(tmp_path):
    model = audit.wrap(torch.nn.Linear(3, 2), modality="tabular", classes=["a", "b"])
    with pytest.raises(audit.AuditInputError, match="save your own module as a model spec.*save_exported"):
        checkpoint.save(model, tmp_path / "x.pt")


def test_save_is_atomic(digits_cnn, tmp_path, monkeypatch):
    target = tmp_path / "m.pt"
    target.write_bytes(b"previous")

    def broken_save(obj, f, *args, **kwargs):
        f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError):
        checkpoint.save(digits_cnn, target)
    assert target.read_bytes() == b"previous"
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]


def test_unknown_architecture_in_checkpoint(digits_cnn, tmp_path):
    buf = io.BytesIO()
    payload = {"format": checkpoint.FORMAT, "version": 1, "architecture": "resnet", "config": {},
               "state_dict": {}, "task": digits_cnn.task.to_dict()}
    torch.save(payload, buf)
    path = tmp_path / "r.pt"
    path.write_bytes(buf.getvalue())
    with pytest.raises(audit.AuditInputError, match="unknown architecture 'resnet'"):
        load(path)


# -- model files are data: TorchScript runs nothing unless trusted ----------------------------------


@pytest.mark.parametrize("where", ["forward", "setstate"])
@pytest.mark.parametrize("with_task", [True, False], ids=["with-task", "without-task"])
def test_torchscript_that_writes_files_is_refused_and_never_loaded(tmp_path, monkeypatch, capsys, where, with_task):
    marker = tmp_path / "marker.bin"
    task = hostile.tabular_model().task.to_dict() if with_task else None
    path = hostile.torchscript_payload(tmp_path / "evil.pt", marker, where=where, task=task)
    assert not marker.exists()
    calls = []
    monkeypatch.setattr(torch.jit, "load", lambda *a, **k: calls.append(a))
    with pytest.raises(UnsafeCheckpointError, match="TorchScript.*--trust-code.*trust_code=True.*audit train"):
        load(path)
    data = tmp_path / "d.csv"
    hostile.table().to_csv(data, index=False)
    code = main(["report", str(path), "--data", str(data), "-o", str(tmp_path / "r.html"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "--trust-code" in err
    assert calls == [] and not marker.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.csv", "evil.pt"]


def test_trusted_torchscript_runs_its_code(tmp_path):
    """The payloads above are live: with --trust-code the file's code does run (so the refusal is what
    kept the marker away)."""
    marker = tmp_path / "marker.bin"
    path = hostile.torchscript_payload(tmp_path / "evil.pt", marker, where="setstate",
                                       task=hostile.tabular_model().task.to_dict())
    model = load(path, trust_code=True)
    assert marker.exists() and model.architecture == "torchscript"


def test_trust_pickle_is_an_alias_of_trust_code(tmp_path, reviews_lstm):
    data = audit.load_dataset("reviews", "test").sample(5, seed=1)
    path = torchscript_file(reviews_lstm, tmp_path / "m.ts", reviews_lstm.encode(data))
    for flag in ("trust_code", "trust_pickle"):
        assert load(path, **{flag: True}).architecture == "torchscript"


@pytest.mark.parametrize("metadata, message", [
    (b"{not json", "not JSON"),
    (b"[" * 10000 + b"]" * 10000, "nested"),
    (b'{"modality": "tabular", "classes": ["a", "b"], "encoder": {"kind": "image", "shape": [1, 2, 2], '
     b'"low": NaN, "high": 1}}', r"task\.encoder\.low must be a finite number, found nan"),
])
def test_trusted_torchscript_with_bad_metadata_is_one_line(tmp_path, metadata, message):
    path = tmp_path / "bad.ts"
    torch.jit.save(torch.jit.script(torch.nn.Linear(3, 2)), str(path), _extra_files={checkpoint.TASK_FILE: metadata})
    with pytest.raises(audit.AuditInputError, match=message) as info:
        load(path, trust_code=True)
    assert "\n" not in str(info.value)


# -- the checkpoint schema: every field checked before anything is built -------------------------------


def edited(edit):
    obj = hostile.payload(hostile.tabular_model())
    edit(obj)
    return obj


SCHEMA = {
    "missing task": (lambda p: p.pop("task"), r"field\(s\) task missing"),
    "missing config": (lambda p: p.pop("config"), r"field\(s\) config missing"),
    "missing architecture": (lambda p: p.pop("architecture"), r"field\(s\) architecture missing"),
    "missing state_dict": (lambda p: p.pop("state_dict"), r"field\(s\) state_dict missing"),
    "tensor as version": (lambda p: p.update(version=torch.tensor([1, 1])), r"checkpoint version a Tensor"),
    "list as config": (lambda p: p.update(config=[1, 2]), r"config must be a mapping, found a list"),
    "list as task": (lambda p: p.update(task=["tabular"]), r"task must be a mapping, found a list"),
    "non-string keys": (lambda p: p["state_dict"].update({7: torch.zeros(1)}), r"state_dict keys must be strings"),
    "negative size": (lambda p: p["config"].update(hidden=[-4]), r"config\.hidden\[0\] must be an integer from 1"),
    "dropout above 1": (lambda p: p["config"].update(dropout=1.5), r"config\.dropout must be a number from 0 to 1"),
    "dropout NaN": (lambda p: p["config"].update(dropout=math.nan), r"config\.dropout must be a finite number"),
    "unknown option": (lambda p: p["config"].update(depth=3), r"architecture 'mlp' has no option\(s\) depth"),
    "tensor in task metadata": (lambda p: p["task"]["metrics"].update(acc=torch.tensor(0.9)),
                                r"task\.metrics\.acc must be plain data .*found a Tensor"),
    "inf in task metadata": (lambda p: p["task"]["training"].update(lr=math.inf),
                             r"task\.training\.lr must be a finite number, found inf"),
    "tensor as class": (lambda p: p["task"].update(classes=[torch.tensor(1), "b"]),
                        r"task\.classes\[0\] must be a string, found a Tensor"),
    "NaN mean": (lambda p: p["task"]["encoder"]["means"].__setitem__(0, math.nan),
                 r"task\.encoder\.means\[0\] must be a finite number, found nan"),
    "NaN std": (lambda p: p["task"]["encoder"]["stds"].__setitem__(1, math.nan),
                r"task\.encoder\.stds\[1\] must be a finite number"),
    "zero std": (lambda p: p["task"]["encoder"]["stds"].__setitem__(1, 0.0), r"task\.encoder\.stds must be positive"),
    "means of the wrong length": (lambda p: p["task"]["encoder"]["means"].append(1.0),
                                  r"task\.encoder\.means has 3 values for 2 numeric columns"),
    "config disagrees with the encoder": (lambda p: p["config"].update(in_features=5),
                                          r"config\.in_features is 5, but the task's input encoder"),
    "NaN weights": (lambda p: p["state_dict"]["0.weight"].fill_(math.nan), r"holds NaN or infinite weights"),
    "integer weights": (lambda p: p["state_dict"].update({"0.bias": torch.zeros(4, dtype=torch.int64)}),
                        r"state_dict\['0\.bias'\] must hold dense floating-point numbers, found torch\.int64"),
    "missing and unexpected weights": (
        lambda p: p["state_dict"].update({"extra": p["state_dict"].pop("0.bias")}),
        r"weights do not fit architecture 'mlp' \(missing 0\.bias; unexpected extra\)"),
    "weights of the wrong shape": (
        lambda p: p["state_dict"].update({"0.weight": torch.zeros(4, 5)}),
        r"weights do not fit architecture 'mlp' \(shape of 0\.weight is \(4, 5\), the architecture needs \(4, 4\)\)"),
}


@pytest.mark.parametrize("case", list(SCHEMA), ids=list(SCHEMA))
def test_malformed_checkpoint_is_one_clear_line(tmp_path, case):
    edit, message = SCHEMA[case]
    path = hostile.save_payload(edited(edit), tmp_path / "m.pt")
    with pytest.raises(audit.AuditInputError, match=message) as info:
        load(path)
    assert str(info.value).startswith(f"{path}: ") and "\n" not in str(info.value)


def test_nan_image_range_is_refused_at_load(tmp_path):
    obj = hostile.payload(hostile.image_model())
    obj["task"]["encoder"]["high"] = math.nan
    with pytest.raises(audit.AuditInputError, match=r"task\.encoder\.high must be a finite number, found nan"):
        load(hostile.save_payload(obj, tmp_path / "m.pt"))


def test_huge_declared_architecture_is_refused_before_allocating(tmp_path, monkeypatch):
    wide = hostile.save_payload(edited(lambda p: p["config"].update(hidden=[10**7])), tmp_path / "wide.pt")
    huge = hostile.save_payload(edited(lambda p: p["config"].update(hidden=[10**5, 10**5])), tmp_path / "huge.pt")
    assert wide.stat().st_size < 40_000
    built = []
    real_create = MODELS.create

    def spy(name, **config):
        module = real_create(name, **config)
        built.append({p.device.type for p in module.parameters()})
        return module

    monkeypatch.setattr(MODELS, "create", spy)
    with pytest.raises(audit.AuditInputError, match=r"config declares 70,000,002 parameters, above the limit "
                                                    r"of 1,000,000 \(Python: max_parameters"):
        load(wide, max_parameters=10**6)
    # Within the limit, the file's weights are compared with the architecture's shapes first.
    with pytest.raises(audit.AuditInputError, match=r"shape of 0\.weight is \(4, 4\), the architecture needs "
                                                    r"\(10000000, 4\)"):
        load(wide)
    with pytest.raises(audit.AuditInputError, match=r"10,000,800,002 parameters, above the limit of 1,000,000,000"):
        load(huge)
    assert built == [{"meta"}] * 3  # only bodiless modules were built


def test_weights_and_config_within_limits_load(tmp_path):
    model = hostile.tabular_model()
    again = load(checkpoint.save(model, tmp_path / "m.pt"))
    frame = hostile.table()
    np.testing.assert_allclose(again.predict_proba(frame), model.predict_proba(frame))


def test_checkpoints_written_by_earlier_versions_load(tmp_path):
    model = hostile.tabular_model()
    written = {**hostile.payload(model), "format": "audit.checkpoint"}  # the format name every checkpoint carries
    again = load(hostile.save_payload(written, tmp_path / "m.pt"))
    np.testing.assert_array_equal(again.predict_proba(hostile.table()), model.predict_proba(hostile.table()))


LOADED = ("import sys; from audit.models.checkpoint import load; load(sys.argv[1]); {extra}"
          "print(sorted({{m.split('.')[0] if m.startswith('fairlearn') else m for m in sys.modules "
          "if m.startswith(('fairlearn', 'audit.mitigation'))}}))")


@pytest.mark.parametrize("extra, loaded", [
    ("", []),
    ("import audit.mitigation.postprocess; ", ["audit.mitigation", "audit.mitigation.postprocess", "fairlearn"]),
], ids=["load", "load-then-mitigation"])
def test_loading_a_model_imports_no_mitigation_or_fairlearn(tmp_path, extra, loaded):
    path = checkpoint.save(hostile.tabular_model(), tmp_path / "m.pt")
    proc = subprocess.run([sys.executable, "-c", LOADED.format(extra=extra), str(path)], capture_output=True,
                          text=True, timeout=600, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.stdout == f"{loaded}\n", proc.stderr


@pytest.mark.parametrize("kind", ["directory", "fifo", "device"])
def test_model_path_that_is_not_a_file_is_named(tmp_path, kind):
    path = {"directory": tmp_path, "device": Path("/dev/null")}.get(kind)
    if kind == "fifo":
        path = tmp_path / "pipe.pt"
        os.mkfifo(path)
    expected = {"directory": "is a directory", "fifo": r"is a named pipe \(FIFO\)", "device": "is a character device"}
    with pytest.raises(audit.AuditInputError, match=expected[kind]):
        load(path)


def test_zip_entry_names_that_are_not_utf8_are_one_line(tmp_path):
    raw = checkpoint.save(hostile.tabular_model(), tmp_path / "m.pt").read_bytes()
    assert raw[6:8] == b"\x08\x08"  # torch flags its entry names as UTF-8 (general purpose bit 11)
    bad = raw.replace(b"archive/data.pkl", b"archive/dat\xff.pkl")
    (tmp_path / "bad.pt").write_bytes(bad)
    with pytest.raises(audit.AuditInputError, match=r"bad\.pt: not a model checkpoint") as info:
        load(tmp_path / "bad.pt")
    assert "\n" not in str(info.value)


def test_zip_needing_an_unknown_version_is_one_line(tmp_path):
    """Found by benchmarks/fuzz.py: zipfile raises NotImplementedError listing such an archive."""
    raw = bytearray(checkpoint.save(hostile.tabular_model(), tmp_path / "m.pt").read_bytes())
    entry = raw.index(b"PK\x01\x02")
    raw[entry + 6] = 128  # "version needed to extract": 12.8
    (tmp_path / "bad.pt").write_bytes(bytes(raw))
    with pytest.raises(audit.AuditInputError, match=r"bad\.pt: not a model checkpoint"):
        load(tmp_path / "bad.pt")


def test_zip_spanning_disks_is_one_line(tmp_path):
    """Found by benchmarks/fuzz.py: zipfile.is_zipfile itself raises on a multi-disk zip64 locator."""
    raw = bytearray(checkpoint.save(hostile.tabular_model(), tmp_path / "m.pt").read_bytes())
    locator = raw.rindex(b"PK\x06\x07")
    raw[locator + 16] = 2  # total number of disks
    (tmp_path / "bad.pt").write_bytes(bytes(raw))
    with pytest.raises(audit.AuditInputError, match=r"bad\.pt: not a model checkpoint \(unreadable zip archive: "
                                                    r"zipfiles that span multiple disks"):
        load(tmp_path / "bad.pt")
