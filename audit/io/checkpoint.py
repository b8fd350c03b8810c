"""Save and load models without running code from the file.

A model file is data. Our format is a dict of plain data and tensors (format name and
version, architecture name and config, state_dict, task), read with
`torch.load(weights_only=True)`, which refuses to build any object it does not know, and
checked field by field before anything is built: the parameter count the config implies
and the weights' shapes are checked on a bodiless ("meta") module, so a small file cannot
make us allocate a large one. TorchScript archives and pickled modules carry code; they
are refused without reading them unless the caller trusts the file (`trust_code=True`,
the CLI's `--trust-code`; `trust_pickle` and `--trust-pickle` are aliases).
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

from audit._util import validate as check
from audit.core.encoders import ImageEncoder
from audit._util.errors import AuditInputError, UnsafeCheckpointError
from audit._util.files import write_atomic
from audit.core.model import Model, Task
from audit.io.limits import MAX_PARAMETERS
from audit.models.registry import MODELS
from audit._util.paths import input_file, shown

FORMAT = "audit.io.checkpoint"
VERSION = 1
TASK_FILE = "audit_task.json"
FIELDS = ("format", "version", "architecture", "config", "state_dict", "task")
MAX_TASK_BYTES = 64 << 20  # TorchScript task metadata (JSON); ours is a few KB, a large vocabulary a few MB

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


def save(model: Model, path: str | Path) -> Path:
    """Write `model` in our checkpoint format, atomically."""
    if model.architecture is None:
        raise AuditInputError(
            "only registry models can be saved as audit checkpoints; export your own module with "
            "audit.io.checkpoint.save_torchscript(model, path)"
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
    """Write `model` as a TorchScript archive carrying its task, loadable by `load(path, trust_code=True)`.

    The module is scripted, or traced on `example` (model-space inputs) when given.
    """
    module = model.module.cpu().eval()
    try:
        scripted = torch.jit.trace(module, example) if example is not None else torch.jit.script(module)
    finally:
        model.module.to(model.device)
    extra = {TASK_FILE: json.dumps(model.task.to_dict())}
    return write_atomic(path, lambda f: torch.jit.save(scripted, f, _extra_files=extra))


def load(path: str | Path, *, trust_code: bool = False, trust_pickle: bool = False, device: str | None = None,
         max_parameters: int = MAX_PARAMETERS) -> Model:
    """A `Model` from our checkpoint format, or from a Hugging Face model directory (`save_pretrained`:
    `audit.io.huggingface.load_pretrained`); TorchScript and pickles only with `trust_code` (`trust_pickle`
    is its alias). Refuses checkpoints declaring more than `max_parameters`."""
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
            payload = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "global" not in str(exc).lower():
            raise AuditInputError(NOT_A_CHECKPOINT.format(path=name, why="unreadable pickle data")) from None
        if not trusted:
            raise UnsafeCheckpointError(UNSAFE.format(path=name)) from None
        return _load_pickled(raw, name, source, device, max_parameters)
    except Exception as exc:  # noqa: BLE001 - corrupt bytes surface as many exception types
        raise AuditInputError(NOT_A_CHECKPOINT.format(path=name, why=_first_line(exc))) from None
    return _from_payload(payload, name, source, device, max_parameters)


def _from_payload(payload, name: str, source: dict, device, max_parameters: int) -> Model:
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise AuditInputError(NOT_A_CHECKPOINT.format(
            path=name, why=f"expected a dict with format {FORMAT!r}; save models with audit train or audit.save"))
    try:
        architecture, config, state_dict, task = _checked(payload, max_parameters)
    except AuditInputError as exc:
        raise AuditInputError(INVALID.format(path=name, why=exc)) from None
    module = MODELS.create(architecture, **config)
    try:
        module.load_state_dict(state_dict)
    except RuntimeError as exc:  # shapes and names were checked; this is a last guard
        raise AuditInputError(
            f"{name}: weights do not fit architecture {architecture!r} ({_first_line(exc)})") from None
    return Model(module, task, architecture=architecture, config=config, device=device, source=source)


def _checked(payload: dict, max_parameters: int) -> tuple[str, dict, dict, Task]:
    """Every field of a payload checked for type and range, and its weights against the architecture
    they claim, on a bodiless module: nothing of the declared size is allocated."""
    check.mapping(payload, "the checkpoint")
    missing = [f for f in FIELDS if f not in payload]
    if missing:
        raise AuditInputError(f"field(s) {', '.join(missing)} missing")
    version = payload["version"]
    if isinstance(version, bool) or not isinstance(version, int) or version != VERSION:
        raise AuditInputError(f"checkpoint version {check.found(version)}; this audit reads {VERSION}")
    architecture = check.string(payload["architecture"], "architecture")
    task = Task.from_dict(payload["task"])
    if task.modality not in MODELS.get(architecture).modalities:
        raise AuditInputError(f"architecture {architecture!r} does not read {task.modality} data")
    config = MODELS.check_config(architecture, payload["config"])
    _check_inputs_fit(task, config)
    try:
        with torch.device("meta"):
            skeleton = MODELS.create(architecture, **config)
    except AuditInputError:
        raise
    except Exception as exc:  # noqa: BLE001 - factories reject configs in their own ways
        raise AuditInputError(f"architecture {architecture!r}: bad configuration ({_first_line(exc)})") from None
    count = sum(p.numel() for p in skeleton.parameters())
    if count > max_parameters:
        raise AuditInputError(f"config declares {count:,} parameters, above the limit of {max_parameters:,} "
                              "(Python: max_parameters=...; CLI: --max-parameters N)")
    state_dict = _checked_weights(payload["state_dict"], skeleton.state_dict(), architecture)
    return architecture, config, state_dict, task


def _check_inputs_fit(task: Task, config: dict) -> None:
    """The config's input sizes and classes are those of the task the model reads."""
    if isinstance(task.encoder, ImageEncoder) and task.encoder.shape is None:
        raise AuditInputError("task.encoder.shape is missing")
    expected = {**task.encoder.input_config(None), "num_classes": len(task.classes)}
    for key, value in expected.items():
        if key in config and config[key] != value:
            raise AuditInputError(f"config.{key} is {config[key]}, but the task's input encoder and classes "
                                  f"give {value}")


def _checked_weights(weights, expected: dict, architecture: str) -> dict:
    check.mapping(weights, "state_dict")
    problems = []
    missing = [k for k in expected if k not in weights]
    unexpected = [k for k in weights if k not in expected]
    if missing:
        problems.append(f"missing {_some(missing)}")
    if unexpected:
        problems.append(f"unexpected {_some(unexpected)}")
    shapes = []
    for key in (k for k in expected if k in weights):
        value = weights[key]
        if not isinstance(value, torch.Tensor):
            raise check.fail(f"state_dict[{key!r}]", "a tensor", value)
        if tuple(value.shape) != tuple(expected[key].shape):
            shapes.append(f"{key} is {_shape(value)}, the architecture needs {_shape(expected[key])}")
    if shapes:
        problems.append(f"shape of {_some(shapes)}")
    if problems:
        raise AuditInputError(f"weights do not fit architecture {architecture!r} ({'; '.join(problems)})")
    for key in expected:
        value = weights[key]
        if not (value.is_floating_point() and value.layout == torch.strided and not value.is_quantized):
            raise AuditInputError(f"state_dict[{key!r}] must hold dense floating-point numbers, found {value.dtype}")
        if not bool(torch.isfinite(value).all()):
            raise AuditInputError(f"state_dict[{key!r}] holds NaN or infinite weights")
    return dict(weights)


def _load_torchscript(raw: bytes, name: str, source: dict, device) -> Model:
    extra = {TASK_FILE: ""}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # TorchScript is deprecated, still supported
            module = torch.jit.load(io.BytesIO(raw), map_location="cpu", _extra_files=extra)
    except Exception as exc:  # noqa: BLE001 - a trusted archive can still be corrupt in many ways
        raise AuditInputError(NOT_A_CHECKPOINT.format(path=name, why=_first_line(exc))) from None
    if not extra[TASK_FILE]:
        raise AuditInputError(
            f"{name}: TorchScript file without audit task metadata; export it with "
            "audit.io.checkpoint.save_torchscript(audit.wrap(module, ...), path)"
        )
    try:
        task = Task.from_dict(_task_json(extra[TASK_FILE]))
    except AuditInputError as exc:
        raise AuditInputError(f"{name}: bad audit task metadata ({exc})") from None
    return Model(module, task, architecture="torchscript", device=device, source=source)


def _task_json(text: str | bytes):
    if len(text) > MAX_TASK_BYTES:
        raise AuditInputError(f"{TASK_FILE} is larger than {MAX_TASK_BYTES >> 20} MB")
    try:
        return json.loads(text)
    except RecursionError:
        raise AuditInputError(f"{TASK_FILE} is nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError is a ValueError
        raise AuditInputError(f"{TASK_FILE} is not JSON ({_first_line(exc)})") from None


def _load_pickled(raw: bytes, name: str, source: dict, device, max_parameters: int) -> Model:
    obj = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=False)
    if isinstance(obj, Model):
        return obj
    if isinstance(obj, nn.Module) and isinstance(getattr(obj, "audit_task", None), dict):
        try:
            task = Task.from_dict(obj.audit_task)
        except AuditInputError as exc:
            raise AuditInputError(f"{name}: bad audit task metadata ({exc})") from None
        return Model(obj, task, device=device, source=source)
    if isinstance(obj, dict) and obj.get("format") == FORMAT:
        return _from_payload(obj, name, source, device, max_parameters)
    raise AuditInputError(
        f"{name}: a pickled {type(obj).__name__} without audit task metadata; load it in Python and "
        "use audit.wrap(module, modality=..., classes=...)"
    )


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
        why = f"unreadable zip archive: {_first_line(exc)}"
        raise AuditInputError(NOT_A_CHECKPOINT.format(path=name, why=why)) from None
    inner = [n.split("/", 1)[-1] for n in names]
    return any(n.startswith("code/") or n == "constants.pkl" for n in inner)


def _plain(value):
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _some(items: list[str], shown_at_most: int = 3) -> str:
    more = len(items) - shown_at_most
    return ", ".join(items[:shown_at_most]) + (f" and {more} more" if more > 0 else "")


def _shape(tensor: torch.Tensor) -> str:
    return "(" + ", ".join(map(str, tensor.shape)) + ")"


def _first_line(exc: BaseException, limit: int = 200) -> str:
    text = str(exc).strip().splitlines()
    line = text[0] if text else type(exc).__name__
    return line if len(line) <= limit else line[: limit - 3] + "..."
