"""The task of a model file that carries none (a trusted pickle, a factory spec, an exported program), described
as plain data: from the command line's task flags or a spec's `[task]` table, checked, and turned into the
keyword arguments of `audit.wrap` (with the model's stated `intended_use` and `out_of_scope`, which `wrapped`
puts on its task).

Only tables and images: a text model needs its tokenizer, which these descriptions do not carry.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from torch import nn

from audit._util import validate as check
from audit._util.errors import AuditInputError
from audit.core.adapters import LAYOUTS, Logits
from audit.core.encoders import ImageEncoder, TabularEncoder
from audit.core.model import USE_KEYS, Model, checked_use, wrap

MODALITIES = ("tabular", "image")
KEYS = ("modality", "classes", "feature_names", "input_shape", "layout", "mean", "std", *USE_KEYS)
IMAGE_ONLY = ("input_shape", "layout", "mean", "std")


def described(task: Mapping, where: str) -> dict:
    """`task` (keys of `KEYS`) checked, as keyword arguments of `audit.wrap`."""
    check.mapping(task, where)
    unknown = [k for k in task if k not in KEYS]
    if unknown:
        raise AuditInputError(f"{where}: unknown key(s) {', '.join(map(str, unknown))}; known: {', '.join(KEYS)}")
    missing = [k for k in ("modality", "classes") if k not in task]
    if missing:
        raise AuditInputError(f"{where}: {' and '.join(missing)} missing")
    modality = check.string(task["modality"], f"{where}.modality")
    if modality not in MODALITIES:
        raise check.fail(f"{where}.modality", f"one of {', '.join(MODALITIES)}", modality)
    classes = check.strings(task["classes"], f"{where}.classes")
    if len(classes) < 2 or len(set(classes)) != len(classes):
        raise AuditInputError(f"{where}.classes must be at least two distinct names, found {classes}")
    out = {"modality": modality, "classes": classes, **checked_use(task, where)}
    if modality == "tabular":
        stray = [k for k in IMAGE_ONLY if k in task]
        if stray:
            raise AuditInputError(f"{where}: {', '.join(stray)} describe images, the model reads tables")
        if "feature_names" in task:
            out["feature_names"] = check.strings(task["feature_names"], f"{where}.feature_names")
        return out
    if "feature_names" in task:
        raise AuditInputError(f"{where}: feature_names describe tables, the model reads images")
    if "input_shape" in task:
        shape = task["input_shape"]
        if not isinstance(shape, (list, tuple)) or len(shape) != 3:
            raise check.fail(f"{where}.input_shape", "three sizes (C, H, W)", shape)
        out["input_shape"] = [check.integer(s, f"{where}.input_shape") for s in shape]
    if "layout" in task:
        layout = check.string(task["layout"], f"{where}.layout")
        if layout not in LAYOUTS:
            raise check.fail(f"{where}.layout", f"one of {', '.join(LAYOUTS)}", layout)
        out["layout"] = layout
    if ("mean" in task) != ("std" in task):
        raise AuditInputError(f"{where}: mean and std are given together (per-channel normalisation)")
    if "mean" in task:
        out["mean"] = check.numbers(task["mean"], f"{where}.mean")
        out["std"] = check.numbers(task["std"], f"{where}.std", low=1e-12)
        if len(out["mean"]) != len(out["std"]):
            raise AuditInputError(f"{where}: mean has {len(out['mean'])} channels, std {len(out['std'])}")
    return out


def wrapped(module: nn.Module, task: Mapping, *, device: str | None, source: Mapping) -> Model:
    """`module` as a Model of the described `task` (checked by `described`), from the file `source` names."""
    model = wrap(module, **{k: v for k, v in task.items() if k not in USE_KEYS}, device=device)
    model.task = replace(model.task, **{k: task[k] for k in USE_KEYS if k in task})
    model.source = {**model.source, **source}
    return model


def description(model: Model) -> dict:
    """The task of a wrapped `model` as `described` reads it back, or an AuditInputError when it has more
    than a description holds (a fitted encoder, a tokenizer, extra inputs, a decision rule)."""
    task, module = model.task, model.module
    layout, mean, std = "NCHW", None, None
    if isinstance(module, Logits):
        if module.extra_inputs is not None:
            raise AuditInputError("a model with extra_inputs cannot be described in a spec (they are code)")
        layout = module.layout
        if module.normalise:
            mean, std = module.mean.flatten().tolist(), module.std.flatten().tolist()
    if task.postprocessing is not None:
        raise AuditInputError("a model with post-processing thresholds cannot be described in a spec; save the "
                              "model before mitigating it, or as a registry checkpoint")
    out: dict = {"modality": task.modality, "classes": list(task.classes), **task.use()}
    encoder = task.encoder
    if isinstance(encoder, TabularEncoder) and encoder.passthrough and not encoder.categorical:
        if encoder.numeric:
            out["feature_names"] = list(encoder.numeric)
    elif isinstance(encoder, ImageEncoder) and (encoder.low, encoder.high) == (0.0, 1.0):
        if encoder.shape:
            out["input_shape"] = list(encoder.shape)
        if layout != "NCHW":
            out["layout"] = layout
        if mean is not None:
            out["mean"], out["std"] = mean, std
    else:
        raise AuditInputError(f"a {task.modality} model with a {type(encoder).__name__} fitted to data cannot be "
                              "described in a spec; spec tasks are tables of raw features or images in [0, 1]")
    return out
