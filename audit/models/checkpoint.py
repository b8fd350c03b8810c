"""Models loaded from files: the checkpoint reader (`audit.io.checkpoint`) hands our format's plain payload to
`build`, which checks its config and weights against the registry's architecture before it makes the module.

The parameter count the config implies and the weights' shapes are checked on a bodiless ("meta") module, so a
small file cannot make us allocate a large one.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch

from audit._util import validate as check
from audit._util.errors import AuditInputError
from audit._util.paths import shown
from audit.core.encoders import ImageEncoder
from audit.core.model import Model, Task
from audit.io import exported
from audit.io.checkpoint import INVALID, Payload, first_line, read
from audit.io.exported import is_exported, task_sidecar
from audit.io.limits import MAX_PARAMETERS
from audit.io.modelspec import is_model_spec
from audit.io.tasks import described
from audit.models.factory import load_spec
from audit.models.registry import MODELS
from audit.models.weights import fit_problems


def load(path: str | Path, *, trust_code: bool = False, trust_pickle: bool = False, device: str | None = None,
         max_parameters: int = MAX_PARAMETERS, task: Mapping | None = None) -> Model:
    """A `Model` from our checkpoint format, a model spec naming your factory and safetensors weights (`.toml`:
    `audit.models.factory`), a `.pt2` ExportedProgram (`audit.io.exported.load`; its task from the sidecar
    `audit.io.exported.write_task` writes, or the archive), or a Hugging Face model directory (`save_pretrained`:
    `audit.io.huggingface.load_pretrained`); TorchScript, pickles and `.pt2` parts that carry code only with
    `trust_code` (`trust_pickle` is its alias). Refuses models of more than `max_parameters`. `task` (modality,
    classes, feature_names, input_shape, layout, mean, std) is the task of a file that carries none: a trusted
    pickled module."""
    if task is not None:
        task = described(task, "task")
    if is_model_spec(path):
        if task is not None:
            raise AuditInputError(f"{shown(path)}: the model spec has its own [task]; drop the task options")
        return load_spec(path, device=device, max_parameters=max_parameters)
    if is_exported(path):
        if task is not None:
            raise AuditInputError(f"{shown(path)}: a .pt2 takes its task from {task_sidecar(path).name} beside it "
                                  "(audit.io.exported.write_task) or from the archive; drop the task options")
        return exported.load(path, trust_code=trust_code or trust_pickle, device=device, max_parameters=max_parameters)
    model = read(path, build=build, trust_code=trust_code, trust_pickle=trust_pickle, device=device,
                 max_parameters=max_parameters, task=task)
    if task is not None and model.source.get("task") != "given":
        raise AuditInputError(f"{shown(path)}: the model file carries its own task; drop the task options")
    return model


def build(payload: Payload, *, device: str | None = None, max_parameters: int = MAX_PARAMETERS) -> Model:
    """The Model of a checkpoint's payload, once its config and weights fit the architecture it names."""
    try:
        config, state_dict = _checked(payload, max_parameters)
    except AuditInputError as exc:
        raise AuditInputError(INVALID.format(path=payload.name, why=exc)) from None
    module = MODELS.create(payload.architecture, **config)
    try:
        module.load_state_dict(state_dict)
    except RuntimeError as exc:  # shapes and names were checked; this is a last guard
        raise AuditInputError(f"{payload.name}: weights do not fit architecture {payload.architecture!r} "
                              f"({first_line(exc)})") from None
    return Model(module, payload.task, architecture=payload.architecture, config=config, device=device,
                 source=payload.source)


def _checked(payload: Payload, max_parameters: int) -> tuple[dict, dict]:
    """The payload's config and weights checked against the architecture they claim, on a bodiless module:
    nothing of the declared size is allocated."""
    architecture, task = payload.architecture, payload.task
    if task.modality not in MODELS.get(architecture).modalities:
        raise AuditInputError(f"architecture {architecture!r} does not read {task.modality} data")
    config = MODELS.check_config(architecture, payload.config)
    _check_inputs_fit(task, config)
    try:
        with torch.device("meta"):
            skeleton = MODELS.create(architecture, **config)
    except AuditInputError:
        raise
    except Exception as exc:  # noqa: BLE001 - factories reject configs in their own ways
        raise AuditInputError(f"architecture {architecture!r}: bad configuration ({first_line(exc)})") from None
    count = sum(p.numel() for p in skeleton.parameters())
    if count > max_parameters:
        raise AuditInputError(f"config declares {count:,} parameters, above the limit of {max_parameters:,} "
                              "(Python: max_parameters=...; CLI: --max-parameters N)")
    return config, _checked_weights(payload.state_dict, skeleton.state_dict(), architecture)


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
    for key in (k for k in expected if k in weights):
        if not isinstance(weights[key], torch.Tensor):
            raise check.fail(f"state_dict[{key!r}]", "a tensor", weights[key])
    problems = fit_problems({k: tuple(v.shape) if isinstance(v, torch.Tensor) else () for k, v in weights.items()},
                            expected, "the architecture")
    if problems:
        raise AuditInputError(f"weights do not fit architecture {architecture!r} ({'; '.join(problems)})")
    for key in expected:
        value = weights[key]
        if not (value.is_floating_point() and value.layout == torch.strided and not value.is_quantized):
            raise AuditInputError(f"state_dict[{key!r}] must hold dense floating-point numbers, found {value.dtype}")
        if not bool(torch.isfinite(value).all()):
            raise AuditInputError(f"state_dict[{key!r}] holds NaN or infinite weights")
    return dict(weights)
