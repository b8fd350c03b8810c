"""Model files written and read without running code from them.

A model file is data. Our format is a dict of plain data and tensors (format name and
version, architecture name and config, state_dict, task), read with
`torch.load(weights_only=True)`, which refuses to build any object it does not know, and
checked field by field: here the fields and the task, then by the `build` hook the caller
passes (`audit.models.checkpoint.load`) the config and weights against the architecture they
name, before anything is built. TorchScript archives and pickled modules carry code; they
are refused without reading them unless the caller trusts the file (`trust_code=True`,
the CLI's `--trust-code`; `trust_pickle` and `--trust-pickle` are aliases); a trusted pickled module
without audit task metadata takes the task its caller describes (`audit.io.tasks`). Your own architecture
is saved as a model spec instead (`save(..., factory=...)`: `audit.io.modelspec`).
"""

from __future__ import annotations

import hashlib
import io
import json
import pickle
import warnings
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import torch
from torch import nn

from audit._util import validate as check
from audit._util.errors import AuditInputError, UnsafeCheckpointError
from audit._util.files import Writer, write_atomic
from audit._util.paths import input_file, shown
from audit.core.model import Model, Task
from audit.io.limits import MAX_PARAMETERS
from audit.io.tasks import wrapped

FORMAT = "audit.checkpoint"  # the file format's name, written in every checkpoint: not a module path
VERSION = 1
TASK_FILE = "audit_task.json"
FIELDS = ("format", "version", "architecture", "config", "state_dict", "task")
MAX_TASK_BYTES = 64 << 20  # task metadata (JSON) of TorchScript and .pt2 files; a few KB, a large vocabulary MBs

TRUST = "If you trust its origin, pass --trust-code (Python: trust_code=True)"
UNSAFE = (
    "{path}: the file holds pickled Python objects, which can run arbitrary code when loaded; "
    "nothing was loaded. " + TRUST
)
TORCHSCRIPT = (
    "{path}: a TorchScript file, whose code runs when it is loaded and run; nothing was loaded. " + TRUST +
    ", or save the model in a safe format: audit train / audit.save_model (weights plus a registry architecture)"
)
NOT_A_CHECKPOINT = "{path}: not a model checkpoint ({why})"
INVALID = "{path}: not a valid audit checkpoint: {why}"


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def save(model: Model, path: str | Path, *, factory: str | None = None, kwargs: dict | None = None) -> Path:
    """Write `model` in our checkpoint format, atomically. With `factory` ("package.module:function", called with
    `kwargs`, builds the wrapped module) write a model spec instead: `path` (.toml) and its weights in
    safetensors next to it (`audit.io.modelspec`)."""
    if factory is not None:
        from audit.io.modelspec import write_spec

        return write_spec(model, path, factory=factory, kwargs=kwargs)
    if kwargs is not None:
        raise AuditInputError("save_model: kwargs are the factory's; pass factory='package.module:function' too")
    return write_atomic(path, writer(model))


def writer(model: Model) -> Writer:
    """What writes `model` in our checkpoint format to an open binary file: for a checkpoint written together with
    other files (`audit._util.files.write_together`)."""
    if model.architecture is None:
        raise AuditInputError(
            "only registry models can be saved as audit checkpoints; save your own module as a model spec: "
            "audit.save_model(model, 'model.toml', factory='package.module:function', kwargs={...}), or export it as "
            "a .pt2 with audit.save_exported(model, path)"
        )
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "architecture": model.architecture,
        "config": _plain(model.config),
        "state_dict": {k: v.detach().cpu() for k, v in model.module.state_dict().items()},
        "task": model.task.to_dict(),
    }
    return lambda f: torch.save(payload, f)


@dataclass(frozen=True)
class Payload:
    """Our format's fields as read from file `name`, the task checked; `config` and `state_dict` are still
    unchecked data, to be checked against `architecture` by whoever builds the module."""

    name: str
    source: dict
    architecture: str
    config: object
    state_dict: object
    task: Task


class Build(Protocol):
    """Makes the Model of a payload, refusing one whose module would hold more than `max_parameters`."""

    def __call__(self, payload: Payload, *, device: str | None, max_parameters: int) -> Model: ...


def read(path: str | Path, *, build: Build, trust_code: bool = False, trust_pickle: bool = False,
         device: str | None = None, max_parameters: int = MAX_PARAMETERS, task: Mapping | None = None) -> Model:
    """A `Model` from our checkpoint format (made by `build` from its checked `Payload`), or from a Hugging Face
    model directory (`save_pretrained`: `audit.io.huggingface.load_pretrained`); TorchScript and pickles only
    with `trust_code` (`trust_pickle` is its alias). `task` (`audit.io.tasks.described`) is the task of a
    pickled module that carries none."""
    trusted = trust_code or trust_pickle
    if Path(path).is_dir():
        from audit.io.huggingface import load_pretrained  # transformers is an optional extra: imported on use

        return load_pretrained(path, trust_code=trusted, device=device, max_parameters=max_parameters)
    path = input_file(path)
    name = shown(path)
    raw = path.read_bytes()
    if not raw:
        raise AuditInputError(NOT_A_CHECKPOINT.format(path=name, why="the file is empty"))
    source = {"path": name, "sha256": hashlib.sha256(raw).hexdigest()}
    if _is_torchscript(raw, name):
        if not trusted:
            raise UnsafeCheckpointError(TORCHSCRIPT.format(path=name))
        return _load_torchscript(raw, name, source, device)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # torch notes pickle protocols it may not read
            obj = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "global" not in str(exc).lower():
            raise AuditInputError(NOT_A_CHECKPOINT.format(path=name, why="unreadable pickle data")) from None
        if not trusted:
            raise UnsafeCheckpointError(UNSAFE.format(path=name)) from None
        obj = _load_pickled(raw, name, source, device, task)
        if isinstance(obj, Model):
            return obj
    except Exception as exc:  # noqa: BLE001 - corrupt bytes surface as many exception types
        raise AuditInputError(NOT_A_CHECKPOINT.format(path=name, why=first_line(exc))) from None
    return build(_payload(obj, name, source), device=device, max_parameters=max_parameters)


def _payload(obj, name: str, source: dict) -> Payload:
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise AuditInputError(NOT_A_CHECKPOINT.format(
            path=name, why=f"expected a dict with format {FORMAT!r}; save models with audit train or audit.save"))
    try:
        check.mapping(obj, "the checkpoint")
        missing = [f for f in FIELDS if f not in obj]
        if missing:
            raise AuditInputError(f"field(s) {', '.join(missing)} missing")
        version = obj["version"]
        if isinstance(version, bool) or not isinstance(version, int) or version != VERSION:
            raise AuditInputError(f"checkpoint version {check.found(version)}; this audit reads {VERSION}")
        architecture = check.string(obj["architecture"], "architecture")
        task = Task.from_dict(obj["task"])
    except AuditInputError as exc:
        raise AuditInputError(INVALID.format(path=name, why=exc)) from None
    return Payload(name, source, architecture, obj["config"], obj["state_dict"], task)


def _load_torchscript(raw: bytes, name: str, source: dict, device) -> Model:
    extra = {TASK_FILE: ""}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # TorchScript is deprecated, still supported
            module = torch.jit.load(io.BytesIO(raw), map_location="cpu", _extra_files=extra)
    except Exception as exc:  # noqa: BLE001 - a trusted archive can still be corrupt in many ways
        raise AuditInputError(NOT_A_CHECKPOINT.format(path=name, why=first_line(exc))) from None
    if not extra[TASK_FILE]:
        raise AuditInputError(
            f"{name}: TorchScript file without audit task metadata; export the model as a .pt2 with "
            "audit.save_exported(audit.wrap(module, ...), path)"
        )
    try:
        task = Task.from_dict(task_json(extra[TASK_FILE]))
    except AuditInputError as exc:
        raise AuditInputError(f"{name}: bad audit task metadata ({exc})") from None
    return Model(module, task, architecture="torchscript", device=device, source=source)


def task_json(text: str | bytes):
    """The JSON of a task file, refused when too large or too deep."""
    if len(text) > MAX_TASK_BYTES:
        raise AuditInputError(f"{TASK_FILE} is larger than {MAX_TASK_BYTES >> 20} MB")
    try:
        return json.loads(text)
    except RecursionError:
        raise AuditInputError(f"{TASK_FILE} is nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError is a ValueError
        raise AuditInputError(f"{TASK_FILE} is not JSON ({first_line(exc)})") from None


def _load_pickled(raw: bytes, name: str, source: dict, device, task: Mapping | None) -> Model | dict:
    """A trusted pickle's Model, or the dict of our format it holds (built by the caller). A module without
    audit task metadata takes `task`."""
    try:
        obj = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=False)
    except ModuleNotFoundError as exc:
        raise AuditInputError(
            f"{name}: the pickled model's class is in module {exc.name!r}, which Python cannot import here; "
            f"run audit from the folder that holds {exc.name!r}, or set PYTHONPATH to that folder"
        ) from None
    except AttributeError as exc:  # the module imports but no longer defines the pickled class
        raise AuditInputError(f"{name}: the pickled model's class is not where it was saved ({first_line(exc)}); "
                              "run audit with the code the model was saved from") from None
    except (RuntimeError, pickle.UnpicklingError, EOFError, ValueError) as exc:  # a pickle torch did not write
        raise AuditInputError(f"{name}: not a model checkpoint ({first_line(exc)})") from None
    if isinstance(obj, Model):
        return obj
    if isinstance(obj, nn.Module) and isinstance(getattr(obj, "audit_task", None), dict):
        try:
            saved = Task.from_dict(obj.audit_task)
        except AuditInputError as exc:
            raise AuditInputError(f"{name}: bad audit task metadata ({exc})") from None
        return Model(obj, saved, device=device, source=source)
    if isinstance(obj, nn.Module) and task is not None:
        return wrapped(obj, task, device=device, source={**source, "task": "given"})
    if isinstance(obj, dict) and obj.get("format") == FORMAT:
        return obj
    if isinstance(obj, nn.Module):
        raise AuditInputError(
            f"{name}: a pickled {type(obj).__name__} that does not say what it reads; give its task: "
            "--modality tabular|image --classes A B ... (and --feature-names, --input-shape, --layout, --mean, "
            "--std as they apply; Python: audit.load_model(path, trust_code=True, task={...}))"
        )
    raise AuditInputError(f"{name}: a pickled {type(obj).__name__}, not a model")


def _is_torchscript(raw: bytes, name: str) -> bool:
    """Whether `raw` is a zip archive holding TorchScript code or constants, read from its list of
    entries alone (torch.load and torch.jit.load are never called to find out)."""
    try:
        if not zipfile.is_zipfile(io.BytesIO(raw)):
            return False
        names = zipfile.ZipFile(io.BytesIO(raw)).namelist()
    except UnicodeDecodeError:
        raise AuditInputError(NOT_A_CHECKPOINT.format(path=name, why="an entry name is not UTF-8")) from None
    except Exception as exc:  # noqa: BLE001 - an archive we cannot list is one we cannot vouch for
        why = f"unreadable zip archive: {first_line(exc)}"
        raise AuditInputError(NOT_A_CHECKPOINT.format(path=name, why=why)) from None
    inner = [n.split("/", 1)[-1] for n in names]
    return any(n.startswith("code/") or n == "constants.pkl" for n in inner)


def _plain(value):
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def first_line(exc: BaseException, limit: int = 200) -> str:
    text = str(exc).strip().splitlines()
    line = text[0] if text else type(exc).__name__
    return line if len(line) <= limit else line[: limit - 3] + "..."
