"""Model specs: your own architecture as a TOML file that names a factory by import path, plus its weights in
safetensors. Both files are data: the TOML holds strings, numbers and tables, and safetensors holds a JSON header
and raw tensor bytes (no pickle), so reading them runs nothing. The factory is code from the user's environment,
imported by `audit.models.factory`, never loaded from a file.

    factory = "mypackage.nets:tiny_resnet"   # module:function, imported from your environment
    weights = "tiny-resnet.safetensors"      # relative to this file

    [kwargs]                                 # keyword arguments of the factory
    num_classes = 2

    [task]                                   # what the model reads and predicts (audit.io.tasks)
    modality = "image"
    classes = ["cat", "dog"]
    input_shape = [3, 16, 16]

Training specs (models/*.toml, read by `audit train`) name an `architecture`; a model spec names a `factory`.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import torch

from audit._util import validate as check
from audit._util.errors import AuditInputError
from audit._util.files import write_atomic
from audit._util.paths import input_file, shown
from audit.core.adapters import Logits
from audit.core.model import Model
from audit.io.checkpoint import first_line
from audit.io.tasks import described, description

KEYS = ("factory", "weights", "kwargs", "task", "description")
FACTORY = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*")
# Callables that read code or pickles from a path or a URL: a spec naming one would run a file's code.
LOADERS = re.compile(r"load|pickle|hub|eval|exec|import|compile", re.IGNORECASE)
SAFETENSORS = ".safetensors"
BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


@dataclass(frozen=True)
class Spec:
    """A model spec as read from `name`, every field checked; nothing imported yet."""

    name: str
    factory: str
    kwargs: dict
    weights: Path
    task: dict
    source: dict

    @property
    def module_name(self) -> str:
        return self.factory.partition(":")[0]

    @property
    def attribute(self) -> str:
        return self.factory.partition(":")[2]


def is_model_spec(path: str | Path) -> bool:
    """Whether `path` names a model spec (a TOML file) rather than a checkpoint."""
    return Path(path).suffix.lower() == ".toml"


def read_spec(path: str | Path) -> Spec:
    path = input_file(path, "model spec")
    name = shown(path)
    raw = path.read_bytes()
    try:
        doc = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise AuditInputError(f"{name}: not a TOML model spec ({exc})") from None
    if "architecture" in doc and "factory" not in doc:
        raise AuditInputError(f"{name}: a training spec (it names an architecture); train it with "
                              f"audit train {name}, then audit the checkpoint it writes")
    try:
        unknown = [k for k in doc if k not in KEYS]
        if unknown:
            raise AuditInputError(f"unknown key(s) {', '.join(unknown)}; a model spec has {', '.join(KEYS)}")
        missing = [k for k in ("factory", "weights", "task") if k not in doc]
        if missing:
            raise AuditInputError(f"{', '.join(missing)} missing")
        factory = checked_factory(doc["factory"])
        kwargs = dict(check.mapping(doc.get("kwargs", {}), "kwargs"))
        weights = check.string(doc["weights"], "weights")
        task = described(doc["task"], "task")
    except AuditInputError as exc:
        raise AuditInputError(f"{name}: not a valid model spec: {exc}") from None
    if Path(weights).is_absolute() or Path(weights).suffix != SAFETENSORS:
        raise AuditInputError(f"{name}: weights must be a {SAFETENSORS} file named relative to the spec, "
                              f"found {weights!r}")
    source = {"path": name, "sha256": hashlib.sha256(raw).hexdigest(), "factory": factory}
    return Spec(name, factory, kwargs, path.parent / weights, task, source)


def checked_factory(value) -> str:
    """A factory path `package.module:function` of identifiers, neither in the standard library nor a loader."""
    factory = check.string(value, "factory")
    if not FACTORY.fullmatch(factory):
        raise check.fail("factory", "an import path module:function of identifiers, e.g. mypackage.nets:resnet",
                         factory)
    module, _, attribute = factory.partition(":")
    top = module.split(".")[0]
    if top in sys.stdlib_module_names or top == "audit":
        raise AuditInputError(f"factory {factory!r}: a module of Python or of audit builds no model of yours; "
                              "name the function of your package that builds the module")
    if attribute.startswith("_") or LOADERS.search(attribute) or any(LOADERS.search(p) for p in module.split(".")):
        raise AuditInputError(f"factory {factory!r}: names a loader or runner of code, which a spec may not "
                              "call; name the function that builds your module")
    return factory


def weight_shapes(path: Path, name: str) -> dict[str, tuple[tuple[int, ...], str]]:
    """Tensor name -> (shape, dtype) from a safetensors file's header alone."""
    from safetensors import safe_open

    path = input_file(path, "weights file")
    try:
        with safe_open(str(path), framework="pt") as f:
            return {k: (tuple(f.get_slice(k).get_shape()), str(f.get_slice(k).get_dtype())) for k in f.keys()}
    except Exception as exc:  # noqa: BLE001 - safetensors reports a malformed header in its own error types
        raise AuditInputError(f"{name}: {shown(path)} is not a safetensors file ({first_line(exc)})") from None


def read_weights(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(path), device="cpu")


def write_spec(model: Model, path: str | Path, *, factory: str, kwargs: dict | None = None) -> Path:
    """Write `model` (a wrapped module that `factory(**kwargs)` builds) as a model spec at `path` (.toml) and its
    weights next to it (same name, .safetensors), atomically; the spec's path."""
    from safetensors.torch import save

    path = Path(path)
    if path.suffix != ".toml":
        raise AuditInputError(f"{shown(path)}: a model spec is a .toml file")
    factory = checked_factory(factory)
    doc = {"factory": factory, "weights": path.with_suffix(SAFETENSORS).name, "kwargs": dict(kwargs or {}),
           "task": description(model)}
    text = "\n".join(_toml(doc)) + "\n"
    if tomllib.loads(text) != _plain(doc):
        raise AuditInputError("kwargs must be TOML values: strings, numbers, booleans, lists and tables")
    inner = model.module.inner if isinstance(model.module, Logits) else model.module
    tensors = {k: v.detach().cpu().contiguous() for k, v in inner.state_dict().items()}
    write_atomic(path.with_suffix(SAFETENSORS), lambda f: f.write(save(tensors)))
    return write_atomic(path, lambda f: f.write(text.encode("utf-8")))


def _toml(doc: dict) -> list[str]:
    lines = [f"{k} = {_value(v, k)}" for k, v in doc.items() if not isinstance(v, dict)]
    for key, table in ((k, v) for k, v in doc.items() if isinstance(v, dict)):
        lines += ["", f"[{key}]", *(f"{_key(k)} = {_value(v, k)}" for k, v in table.items())]
    return lines


def _key(k) -> str:
    return k if isinstance(k, str) and BARE_KEY.fullmatch(k) else json.dumps(str(k))


def _value(v, where: str) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if not math.isfinite(v):
            raise AuditInputError(f"{where}: {v} has no place in a spec")
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_value(x, where) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{_key(k)} = {_value(x, where)}" for k, x in v.items()) + "}"
    raise AuditInputError(f"{where}: a {type(v).__name__} cannot be written in a TOML spec")


def _plain(v):
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    return v
