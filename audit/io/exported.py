"""`.pt2` files (torch.export's ExportedProgram) read as data, with the task they are audited for.

`torch.export.load` is not safe on its own (its docstring says so), and reading torch's source shows where a
`.pt2` can run code from the file: weights and constants marked `use_pickle` and "opaque" constants are
unpickled (`weights_only=False`, `pickle.loads`), TorchBind objects are rebuilt by their registered classes,
sample inputs that fail a `weights_only` load are retried without it, symbolic shape expressions are parsed
with `sympy.sympify` (an `eval`), `guards_code` strings become Python source of the module's input checks,
node targets are looked up by any attribute path under `torch` (`torch.os.system` resolves), and an archive
may carry AOTInductor shared libraries. So the archive is checked first, from its entry list and JSON alone:
only tensors stored as raw bytes, sample inputs that load with `weights_only=True`, shape expressions made
of sympy names and symbols, no guards code, and graph nodes calling ATen operators or the few Python
operators shapes need. Anything else is refused without `trust_code`.

The task (modality, classes, encoder) and the input adapter (layout, mean, std) come from the caller
(`task=`), from a sidecar beside the file (`model.pt2.task.json`, `write_task`), or from the archive's
extra file `audit_task.json` (`save`, public as `audit.save_exported`), in that order.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import warnings
import zipfile
from collections.abc import Mapping, Sequence
from math import prod
from pathlib import Path

import torch
from torch import nn

from audit._util import validate as check
from audit._util.errors import AuditInputError, UnsafeCheckpointError
from audit._util.files import write_atomic
from audit._util.paths import input_file, shown
from audit.core.adapters import LAYOUTS, Logits
from audit.core.model import Model, Task, checked_device
from audit.io.checkpoint import TASK_FILE, TRUST, first_line, task_json
from audit.io.limits import MAX_PARAMETERS

SIDECAR_SUFFIX = ".task.json"
UNSAFE = "{path}: an ExportedProgram whose loading can run code from the file ({why}); nothing was loaded. " + TRUST
NO_TASK = (
    "{path}: an ExportedProgram without the task it is audited for; save it with audit.save_exported(model, path), "
    "write one beside it with audit.io.exported.write_task(model, path), or give the task on the command line"
)
NOT_EXPORTED = "{path}: not a readable .pt2 ExportedProgram ({why})"

_ENTRIES = re.compile(
    r"(archive_format|archive_version|byteorder|\.data/version|\.data/serialization_id|models/model\.json"
    r"|data/weights/(model_weights_config\.json|weight_\d+)|data/constants/(model_constants_config\.json|tensor_\d+)"
    r"|data/sample_inputs/model\.pt|extra/[\w.-]+)"
)
# what symbolic shapes need from Python's operator module; nothing here reaches the file system or imports
_OPERATORS = {"getitem", "add", "sub", "mul", "floordiv", "truediv", "mod", "neg", "pow", "eq", "ne", "lt", "le",
              "gt", "ge", "and_", "or_", "not_"}
_SYMPY_KEYWORDS = {"positive", "integer", "nonnegative", "negative", "nonpositive", "real", "finite", "zero"}


def is_exported(path: str | Path) -> bool:
    """Whether `path` is a `.pt2` archive (torch.export.save), from its entry list alone. Only regular files
    are opened (a FIFO would block); the checkpoint reader names what else the path is."""
    try:
        if not Path(path).is_file():
            return False
        with zipfile.ZipFile(path) as archive:
            return any(n.split("/", 1)[-1] == "archive_format" for n in archive.namelist())
    except Exception:  # noqa: BLE001 - zipfile fails in many ways; the checkpoint reader then names the problem
        return False


def task_sidecar(path: str | Path) -> Path:
    """Where the task of the `.pt2` at `path` is kept beside it: `model.pt2.task.json`."""
    return Path(str(path) + SIDECAR_SUFFIX)


def write_task(model: Model | Task, path: str | Path, *, layout: str = "NCHW", mean: Sequence[float] | None = None,
               std: Sequence[float] | None = None) -> Path:
    """Write the sidecar (`task_sidecar(path)`) that lets a `.pt2` exported by the user be audited: the task of
    `model` (an audit Model, or a Task) and how the program reads pixels (`layout`, per-channel `mean`/`std` of
    a program that reads normalised images). Returns the sidecar's path."""
    task = model.task if isinstance(model, Model) else model
    text = json.dumps(_sidecar(task, layout, mean, std), indent=1)
    return write_atomic(task_sidecar(path), lambda f: f.write(text.encode()))


def save(model: Model, path: str | Path, *, example: torch.Tensor | None = None) -> Path:
    """Write `model` as a `.pt2` ExportedProgram carrying its task, atomically; `audit.load_model(path)` and
    `audit report path` read it without running code from it. The program is exported from `model.module`
    (its input adapter included) on `example` (model-space inputs; by default two made from the task's input
    shape), with a dynamic batch size."""
    module = model.module.eval()
    example = _example(model.task) if example is None else example.detach().cpu()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # export notes internals (deprecations, specialisations) users can't act on
            program = torch.export.export(module.cpu(), (example,),
                                          dynamic_shapes=({0: torch.export.Dim("batch", min=1)},))
    except Exception as exc:  # noqa: BLE001 - export refuses modules in many ways
        raise AuditInputError(f"torch.export could not export the model ({first_line(exc)})") from None
    finally:
        module.to(model.device)
    extra = {TASK_FILE: json.dumps(_sidecar(model.task, "NCHW", None, None))}
    return write_atomic(path, lambda f: torch.export.save(program, f, extra_files=extra))


def load(path: str | Path, *, task: Task | None = None, layout: str = "NCHW", mean: Sequence[float] | None = None,
         std: Sequence[float] | None = None, trust_code: bool = False, device: str | None = None,
         max_parameters: int = MAX_PARAMETERS) -> Model:
    """The `Model` of a `.pt2` file, once its archive is shown to hold data only (or `trust_code`). The task is
    `task` (with `layout`, `mean`, `std`), else the sidecar beside the file, else the archive's own."""
    path = input_file(path)
    name = shown(path)
    raw = path.read_bytes()
    reasons, count = _inspect(raw, name)
    if reasons and not trust_code:
        raise UnsafeCheckpointError(UNSAFE.format(path=name, why="; ".join(reasons)))
    if count > max_parameters:
        raise AuditInputError(f"{name}: the program holds {count:,} weights, above the limit of {max_parameters:,} "
                              "(Python: max_parameters=...; CLI: --max-parameters N)")
    extra = {TASK_FILE: ""}
    target = checked_device(device)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.export.load(io.BytesIO(raw), extra_files=extra)
            if target.type != "cpu":
                program = torch.export.passes.move_to_device_pass(program, target)
            module = _eager(program.module())
    except Exception as exc:  # noqa: BLE001 - a damaged archive fails in many ways
        raise AuditInputError(NOT_EXPORTED.format(path=name, why=first_line(exc))) from None
    if task is None:
        task, layout, mean, std = _task(path, name, extra[TASK_FILE])
    source = {"path": name, "sha256": hashlib.sha256(raw).hexdigest()}
    return Model(Logits(module, layout=layout, mean=mean, std=std), task, architecture="exported", device=target,
                 source=source)


def _task(path: Path, name: str, inside: str) -> tuple[Task, str, list | None, list | None]:
    """The task, layout, mean and std from the sidecar beside `path`, else from the archive (`inside`)."""
    sidecar = task_sidecar(path)
    where, text = (shown(sidecar), sidecar.read_bytes()) if sidecar.is_file() else (name, inside)
    if not text:
        raise AuditInputError(NO_TASK.format(path=name))
    try:
        d = task_json(text)
        check.mapping(d, "the task file")
        task = Task.from_dict(d.get("task"), "task")
        layout = d.get("layout", "NCHW")
        if layout not in LAYOUTS:
            raise check.fail("layout", f"one of {', '.join(LAYOUTS)}", layout)
        mean, std = (None if d.get(k) is None else check.numbers(d[k], k) for k in ("mean", "std"))
    except AuditInputError as exc:
        raise AuditInputError(f"{where}: bad audit task metadata ({exc})") from None
    return task, layout, mean, std


def _sidecar(task: Task, layout: str, mean, std) -> dict:
    if layout not in LAYOUTS:
        raise AuditInputError(f"layout must be one of {', '.join(LAYOUTS)}, not {layout!r}")
    return {"task": task.to_dict(), "layout": layout, "mean": None if mean is None else [float(m) for m in mean],
            "std": None if std is None else [float(s) for s in std]}


def _example(task: Task) -> torch.Tensor:
    encoder = task.encoder
    if task.modality == "image" and encoder.shape is not None:
        return encoder.low + (encoder.high - encoder.low) * torch.rand(2, *encoder.shape)
    if task.modality == "tabular":
        try:
            return torch.zeros(2, len(encoder.feature_names(None)))
        except Exception:  # noqa: BLE001 - an encoder that learns its columns from the data knows none yet
            pass
    raise AuditInputError("save_exported needs example=... (a batch of model inputs) for this model's task")


def _inspect(raw: bytes, name: str) -> tuple[list[str], int]:
    """Why loading this archive could run code from it (empty when it cannot), and how many weights it holds."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(raw))
        names = archive.namelist()
    except Exception as exc:  # noqa: BLE001 - an archive we cannot list is one we cannot vouch for
        why = f"unreadable zip archive: {first_line(exc)}"
        raise AuditInputError(NOT_EXPORTED.format(path=name, why=why)) from None
    roots = {n.split("/", 1)[0] for n in names}
    if len(roots) != 1 or any("/" not in n for n in names):
        raise AuditInputError(NOT_EXPORTED.format(path=name, why="entries outside one archive folder"))
    root = roots.pop() + "/"
    entries = {n[len(root):]: n for n in names}
    reasons = [f"entry {e} is not one torch.export writes for plain tensors"
               for e in entries if not _ENTRIES.fullmatch(e)]

    def read_json(entry: str):
        if entry not in entries:
            raise AuditInputError(NOT_EXPORTED.format(path=name, why=f"{entry} missing"))
        try:
            return json.loads(archive.read(entries[entry]))
        except Exception as exc:  # noqa: BLE001 - bad bytes or bad JSON
            raise AuditInputError(NOT_EXPORTED.format(path=name, why=f"{entry}: {first_line(exc)}")) from None

    try:
        count = 0
        for kind, entry in (("weight", "data/weights/model_weights_config.json"),
                            ("constant", "data/constants/model_constants_config.json")):
            for key, meta in read_json(entry).get("config", {}).items():
                if meta.get("use_pickle") or not re.fullmatch(r"(weight|tensor)_\d+", str(meta.get("path_name"))):
                    reasons.append(f"{kind} {key} is a pickled object")
                elif kind == "weight":
                    count += prod(s.get("as_int", 0) for s in (meta.get("tensor_meta") or {}).get("sizes", []))
        reasons += _graph_reasons(read_json("models/model.json"))
    except (AttributeError, TypeError, ValueError, RecursionError) as exc:  # JSON of another shape than torch's
        why = f"malformed archive metadata: {first_line(exc)}"
        raise AuditInputError(NOT_EXPORTED.format(path=name, why=why)) from None
    if "data/sample_inputs/model.pt" in entries:
        try:
            torch.load(io.BytesIO(archive.read(entries["data/sample_inputs/model.pt"])), weights_only=True)
        except Exception:  # noqa: BLE001 - torch would retry it with weights_only=False
            reasons.append("its sample inputs are pickled objects")
    return reasons, count


def _graph_reasons(program: Mapping) -> list[str]:
    """What in the serialized program turns into Python code: guards code, node targets outside ATen and the
    shape operators, shape expressions that are not sympy names and symbols."""
    reasons = ["it carries guards code (Python source)"] if program.get("guards_code") else []
    targets, expressions = set(), set()

    def walk(value):
        if isinstance(value, Mapping):
            if isinstance(value.get("target"), str) and "inputs" in value:
                targets.add(value["target"])
            if "expr_str" in value:
                expressions.add(value["expr_str"] if isinstance(value["expr_str"], str) else repr(value["expr_str"]))
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(program)
    reasons += [f"node target {t}" for t in sorted(targets) if not _safe_target(t)]
    reasons += [f"shape expression {e[:60]!r}" for e in sorted(expressions) if not _safe_expression(e)]
    return reasons


def _safe_target(target: str) -> bool:
    if target.startswith("_operator."):
        return target.split(".", 1)[1] in _OPERATORS
    return re.fullmatch(r"torch\.ops\.aten\.\w+\.\w+", target) is not None


def _safe_expression(text: str) -> bool:
    """A sympy `srepr` of shapes: class names, symbol names in quotes, numbers, operators; no attribute access,
    no other strings, no lower-case names but sympy's assumptions."""
    if not re.fullmatch(r"[\w\s'(),=+\-*/.]*", text):
        return False
    quoted = re.findall(r"'([^']*)'", text)
    if text.count("'") != 2 * len(quoted) or not all(re.fullmatch(r"[a-z]+\d*", q) for q in quoted):
        return False
    bare = re.sub(r"'[^']*'", "", text)
    if re.search(r"(?<!\d)\.|\.(?!\d)", bare):
        return False
    return all(re.fullmatch(r"[A-Z][A-Za-z]*", w) or w in _SYMPY_KEYWORDS or w in ("True", "False")
               for w in re.findall(r"[A-Za-z_]\w*", bare))


def _eager(program_module: nn.Module) -> torch.fx.GraphModule:
    """A plain GraphModule of the program: one tensor in, its outputs flat (the logits alone when it has one),
    train/eval allowed, no pytree specs (copying those warns), its convolutions, linear layers, batch norms and
    ReLUs called as torch.nn modules holding the program's own tensors: what layer methods (Grad-CAM), shap's
    DeepLIFT rules and the explanation sanity check's re-initialisation look for."""
    module = torch.fx.GraphModule(program_module, program_module.graph)
    graph = module.graph
    graph._codegen = torch.fx.graph.CodeGen()  # noqa: SLF001 - the documented way to drop pytree (un)flattening
    for spec in ("_in_spec", "_out_spec"):
        module.__dict__.pop(spec, None)
    inputs = [n for n in graph.nodes if n.op == "placeholder"]
    if len(inputs) != 1:
        raise AuditInputError(f"the program takes {len(inputs)} inputs; audit feeds it one batch of inputs")
    output = next(n for n in graph.nodes if n.op == "output")
    outputs = output.args[0]
    if isinstance(outputs, (list, tuple)) and len(outputs) == 1:
        output.args = (outputs[0],)
    relus = 0
    for node in list(graph.nodes):
        if node.op == "call_module" and node.target == "_guards_fn":  # input shape asserts; as a module it
            graph.erase_node(node)  # returns None, which backward hooks (shap's) warn about
            module.delete_submodule("_guards_fn")
        elif node.op == "call_function" and node.target in _LAYERS:
            path = _as_layer(module, node)
            if path is not None:
                with graph.inserting_before(node):
                    node.replace_all_uses_with(graph.call_module(path, (node.args[0],)))
                graph.erase_node(node)
        elif _is_lone_relu(node):  # DeepLIFT (shap) treats ReLU modules as the nonlinearity they are
            relus += 1
            module.add_submodule(f"relu_{relus}", nn.ReLU())
            with graph.inserting_before(node):
                node.replace_all_uses_with(graph.call_module(f"relu_{relus}", (node.args[0],)))
            graph.erase_node(node)
    graph.eliminate_dead_code()
    module.recompile()
    return module


def _is_lone_relu(node) -> bool:
    """A ReLU node that can run out of place: in place, its input has no other reader."""
    if node.op != "call_function" or len(node.args) != 1 or node.kwargs:
        return False
    if node.target is torch.ops.aten.relu.default:
        return True
    return node.target is torch.ops.aten.relu_.default and len(node.args[0].users) == 1


def _as_layer(module: torch.fx.GraphModule, node) -> str | None:
    """Turn the holder of an ATen conv2d, linear or batch_norm node's weights into the torch.nn layer they came
    from, holding the same tensors, so that hooks, DeepLIFT rules and re-initialisation see the layer; its path,
    or None when the node is another op or its tensors do not sit alone in one submodule."""
    build = _LAYERS.get(node.target)
    if build is None or node.kwargs:
        return None
    args = (*node.args, *_DEFAULTS[node.target][len(node.args):])
    tensors = [a for a in args[1:5 if node.target is torch.ops.aten.batch_norm.default else 3] if a is not None]
    if not all(getattr(t, "op", None) == "get_attr" for t in tensors) or not tensors:
        return None
    path = tensors[0].target.rpartition(".")[0]
    names = {t.target.rpartition(".")[2] for t in tensors}
    if not path or any(t.target.rpartition(".")[0] != path for t in tensors):
        return None
    holder = module.get_submodule(path)
    held = {n for n, _ in holder.named_parameters(recurse=False)} | {n for n, _ in holder.named_buffers(recurse=False)}
    if type(holder) is not nn.Module or list(holder.children()) or not names <= held or \
            held - names - {"num_batches_tracked"}:
        return None
    layer = build(holder, args, node)
    if layer is None:
        return None
    for name, value in [*holder.named_parameters(recurse=False), *holder.named_buffers(recurse=False)]:
        setattr(layer, name, value)
    if "bias" not in held and hasattr(layer, "bias"):
        layer.bias = None
    parent_path, _, child = path.rpartition(".")
    setattr(module.get_submodule(parent_path) if parent_path else module, child, layer)
    return path


def _conv(holder, args, node) -> nn.Module | None:
    _, weight, bias, stride, padding, dilation, groups = args
    if isinstance(padding, str):
        return None
    w = holder.weight
    return nn.Conv2d(w.shape[1] * groups, w.shape[0], tuple(w.shape[2:]), stride=_pair(stride),
                     padding=_pair(padding), dilation=_pair(dilation), groups=groups, bias=bias is not None,
                     device="meta")


def _linear(holder, args, node) -> nn.Module:
    w = holder.weight
    return nn.Linear(w.shape[1], w.shape[0], bias=args[2] is not None, device="meta")


def _batch_norm(holder, args, node) -> nn.Module | None:
    _, weight, bias, mean, var, training, momentum, eps, _ = args
    value = node.meta.get("val")
    kinds = {2: nn.BatchNorm1d, 3: nn.BatchNorm1d, 4: nn.BatchNorm2d, 5: nn.BatchNorm3d}
    if training or weight is None or bias is None or mean is None or var is None or value is None or \
            value.dim() not in kinds:
        return None
    return kinds[value.dim()](holder.weight.shape[0], eps=eps, momentum=momentum, device="meta")


_LAYERS = {torch.ops.aten.conv2d.default: _conv, torch.ops.aten.linear.default: _linear,
           torch.ops.aten.batch_norm.default: _batch_norm}
_DEFAULTS = {  # each op's arguments after the input, as in its ATen schema
    torch.ops.aten.conv2d.default: (None, None, None, (1, 1), (0, 0), (1, 1), 1),
    torch.ops.aten.linear.default: (None, None, None),
    torch.ops.aten.batch_norm.default: (None, None, None, None, None, False, 0.1, 1e-5, True),
}


def _pair(value) -> tuple[int, int]:
    value = tuple(value)
    return value * 2 if len(value) == 1 else value
