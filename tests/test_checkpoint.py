"""Checkpoints: plain-data round trip, TorchScript, and refusal of pickles that would run code."""

from __future__ import annotations

import io
import os
import pickle
import zipfile

import numpy as np
import pytest
import torch

import audit
from audit import checkpoint
from audit.errors import UnsafeCheckpointError


class WritesFile:
    """Unpickling this calls os.system, which writes a marker file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, (f"echo pwned > {self.marker}",)


def test_round_trip_gives_identical_predictions(digits_cnn, tmp_path):
    data = audit.load_dataset("digits", "test")
    path = checkpoint.save(digits_cnn, tmp_path / "m.pt")
    again = checkpoint.load(path)
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
    checkpoint.load(path)
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
    with pytest.raises(UnsafeCheckpointError, match="--trust-pickle"):
        checkpoint.load(path)
    assert not marker.exists()


def test_legacy_pickle_file_is_refused(tmp_path):
    marker = tmp_path / "marker.txt"
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps(WritesFile(marker)))
    with pytest.raises(audit.AuditInputError):
        checkpoint.load(path)
    assert not marker.exists()


def test_pickled_module_loads_only_when_trusted(tmp_path, adult_mlp):
    module = adult_mlp.module
    module.audit_task = adult_mlp.task.to_dict()
    path = tmp_path / "pickled.pt"
    try:
        torch.save(module, path)
    finally:
        del module.audit_task
    with pytest.raises(UnsafeCheckpointError, match="trust_pickle=True"):
        checkpoint.load(path)
    trusted = checkpoint.load(path, trust_pickle=True)
    data = audit.load_dataset("adult", "test").sample(100, seed=0)
    np.testing.assert_allclose(trusted.predict_proba(data), adult_mlp.predict_proba(data))


@pytest.mark.parametrize("content", [b"", b"\x00" * 10, os.urandom(4096), b"PK\x03\x04 truncated zip"])
def test_garbage_is_not_a_checkpoint(tmp_path, content):
    path = tmp_path / "junk.pt"
    path.write_bytes(content)
    with pytest.raises(audit.AuditInputError, match="junk.pt"):
        checkpoint.load(path)


def test_truncated_checkpoint_is_refused(digits_cnn, tmp_path):
    path = checkpoint.save(digits_cnn, tmp_path / "m.pt")
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(audit.AuditInputError, match="not a model checkpoint"):
        checkpoint.load(path)


def test_torchscript_round_trip(reviews_lstm, tmp_path):
    data = audit.load_dataset("reviews", "test").sample(50, seed=1)
    example = reviews_lstm.encode(data)  # full length: TorchScript modules get untrimmed ids
    path = checkpoint.save_torchscript(reviews_lstm, tmp_path / "m.ts", example=example)
    loaded = checkpoint.load(path)
    assert loaded.architecture == "torchscript"
    np.testing.assert_allclose(loaded.predict_proba(data), reviews_lstm.predict_proba(data), atol=1e-5)


def test_torchscript_without_task_is_explained(tmp_path):
    scripted = torch.jit.script(torch.nn.Linear(3, 2))
    path = tmp_path / "bare.ts"
    torch.jit.save(scripted, str(path))
    with pytest.raises(audit.AuditInputError, match="without audit task metadata"):
        checkpoint.load(path)


def test_wrapped_user_module_cannot_be_saved_as_registry_checkpoint(tmp_path):
    model = audit.wrap(torch.nn.Linear(3, 2), modality="tabular", classes=["a", "b"])
    with pytest.raises(audit.AuditInputError, match="save_torchscript"):
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
        checkpoint.load(path)
