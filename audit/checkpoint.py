"""Save and load models without running code from the file.

Our format is a dict of plain data and tensors (format name and version, architecture
name and config, state_dict, task), read with `torch.load(weights_only=True)`, which
refuses to build any object it does not know. TorchScript archives load with
`torch.jit.load` when they carry our task metadata. A pickled whole module is refused
unless the caller passes `trust_pickle=True` (the CLI's `--trust-pickle`).
"""

from __future__ import annotations

import hashlib
import io
import json
import pickle
import warnings
import zipfile
from pathlib import Path

import torch
from torch import nn

from audit.errors import AuditInputError, UnsafeCheckpointError
from audit.files import write_atomic
from audit.model import Model, Task
from audit.models.registry import MODELS

FORMAT = "audit.checkpoint"
VERSION = 1
TASK_FILE = "audit_task.json"

UNSAFE = (
    "{path}: the file holds pickled Python objects, which can run arbitrary code when loaded; "
    "nothing was loaded. If you trust its origin, pass --trust-pickle (Python: trust_pickle=True)"
)
NOT_A_CHECKPOINT = "{path}: not a model checkpoint ({why})"


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def save(model: Model, path: str | Path) -> Path:
    """Write `model` in our checkpoint format, atomically."""
    if model.architecture is None:
        raise AuditInputError(
            "only registry models can be saved as audit checkpoints; export your own module with "
            "audit.checkpoint.save_torchscript(model, path)"
        )
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "architecture": model.architecture,
        "config": _plain(model.config),
        "state_dict": {k: v.detach().cpu() for k, v in model.module.state_dict().items()},
        "task": model.task.to_dict(),
    }
    return write_atomic(path, lambda f: torch.save(payload, f))


def save_torchscript(model: Model, path: str | Path, *, example: torch.Tensor | None = None) -> Path:
    """Write `model` as a TorchScript archive carrying its task, loadable by `load`.

    The module is scripted, or traced on `example` (model-space inputs) when given.
    """
    module = model.module.cpu().eval()
    try:
        scripted = torch.jit.trace(module, example) if example is not None else torch.jit.script(module)
    finally:
        model.module.to(model.device)
    extra = {TASK_FILE: json.dumps(model.task.to_dict())}
    return write_atomic(path, lambda f: torch.jit.save(scripted, f, _extra_files=extra))


def load(path: str | Path, *, trust_pickle: bool = False, device: str | None = None) -> Model:
    """A `Model` from our checkpoint format or TorchScript; pickles only with `trust_pickle`."""
    path = Path(path)
    if not path.is_file():
        raise AuditInputError(f"{path}: no such file")
    raw = path.read_bytes()
    if not raw:
        raise AuditInputError(NOT_A_CHECKPOINT.format(path=path, why="the file is empty"))
    source = {"path": str(path), "sha256": hashlib.sha256(raw).hexdigest()}
    if _is_torchscript(raw):
        return _load_torchscript(raw, path, source, device)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # torch notes pickle protocols it may not read
            payload = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "global" not in str(exc).lower():
            raise AuditInputError(NOT_A_CHECKPOINT.format(path=path, why="unreadable pickle data")) from None
        if not trust_pickle:
            raise UnsafeCheckpointError(UNSAFE.format(path=path)) from None
        return _load_pickled(raw, path, source, device)
    except Exception as exc:  # noqa: BLE001 - corrupt bytes surface as many exception types
        raise AuditInputError(NOT_A_CHECKPOINT.format(path=path, why=_first_line(exc))) from None
    return _from_payload(payload, path, source, device)


def _from_payload(payload, path: Path, source: dict, device) -> Model:
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise AuditInputError(NOT_A_CHECKPOINT.format(
            path=path, why=f"expected a dict with format {FORMAT!r}; save models with audit train or audit.save"))
    if payload.get("version") != VERSION:
        raise AuditInputError(f"{path}: checkpoint version {payload.get('version')!r}; this audit reads {VERSION}")
    task = Task.from_dict(payload["task"])
    architecture = payload["architecture"]
    module = MODELS.create(architecture, **payload["config"])
    try:
        module.load_state_dict(payload["state_dict"])
    except RuntimeError as exc:
        raise AuditInputError(f"{path}: weights do not fit architecture {architecture!r} ({_first_line(exc)})") from None
    return Model(module, task, architecture=architecture, config=payload["config"], device=device, source=source)


def _load_torchscript(raw: bytes, path: Path, source: dict, device) -> Model:
    extra = {TASK_FILE: ""}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # TorchScript is deprecated, still supported
            module = torch.jit.load(io.BytesIO(raw), map_location="cpu", _extra_files=extra)
    except RuntimeError as exc:
        raise AuditInputError(NOT_A_CHECKPOINT.format(path=path, why=_first_line(exc))) from None
    if not extra[TASK_FILE]:
        raise AuditInputError(
            f"{path}: TorchScript file without audit task metadata; export it with "
            "audit.checkpoint.save_torchscript(audit.wrap(module, ...), path)"
        )
    task = Task.from_dict(json.loads(extra[TASK_FILE]))
    return Model(module, task, architecture="torchscript", device=device, source=source)


def _load_pickled(raw: bytes, path: Path, source: dict, device) -> Model:
    obj = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=False)
    if isinstance(obj, Model):
        return obj
    if isinstance(obj, nn.Module) and isinstance(getattr(obj, "audit_task", None), dict):
        return Model(obj, Task.from_dict(obj.audit_task), device=device, source=source)
    if isinstance(obj, dict) and obj.get("format") == FORMAT:
        return _from_payload(obj, path, source, device)
    raise AuditInputError(
        f"{path}: a pickled {type(obj).__name__} without audit task metadata; load it in Python and "
        "use audit.wrap(module, modality=..., classes=...)"
    )


def _is_torchscript(raw: bytes) -> bool:
    if not zipfile.is_zipfile(io.BytesIO(raw)):
        return False
    try:
        names = zipfile.ZipFile(io.BytesIO(raw)).namelist()
    except zipfile.BadZipFile:
        return False
    return any(n.split("/", 1)[-1].startswith("code/") for n in names)


def _plain(value):
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
