"""Your own architecture from a model spec (`audit.io.modelspec`): the factory it names imported from your
environment, called with the spec's keyword arguments, and its weights loaded from safetensors once their names
and shapes fit the module the factory built.

The parameter count is checked on a bodiless ("meta") module first, so a small spec cannot make us allocate a
large one.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import torch
from torch import nn

from audit._util.errors import AuditInputError
from audit.core.model import Model
from audit.io.checkpoint import first_line
from audit.io.limits import MAX_PARAMETERS
from audit.io.modelspec import Spec, read_spec, read_weights, weight_shapes
from audit.io.tasks import wrapped
from audit.models.weights import fit_problems, some


def load_spec(path: str | Path, *, device: str | None = None, max_parameters: int = MAX_PARAMETERS) -> Model:
    """The Model a model spec describes: its factory's module with its weights, wrapped with its task."""
    spec = read_spec(path)
    shapes = weight_shapes(spec.weights, spec.name)  # a malformed weights file is refused before any import
    factory = _factory(spec)
    try:
        with torch.device("meta"):
            skeleton = _built(factory, spec)
    except AuditInputError:
        raise
    except Exception:  # noqa: BLE001 - a factory that cannot build on "meta" is checked on the real one
        skeleton = None
    if skeleton is not None:
        _check_size(skeleton, spec, max_parameters)
    try:
        module = _built(factory, spec)
    except AuditInputError:
        raise
    except Exception as exc:  # noqa: BLE001 - the factory is the user's code and fails in its own ways
        raise AuditInputError(f"{spec.name}: factory {spec.factory} failed ({first_line(exc)})") from None
    if skeleton is None:
        _check_size(module, spec, max_parameters)
    _check_shapes(shapes, module.state_dict(), spec)
    weights = read_weights(spec.weights)
    for key, value in weights.items():
        if not bool(torch.isfinite(value).all()):
            raise AuditInputError(f"{spec.name}: weights[{key!r}] holds NaN or infinite values")
    module.load_state_dict(weights)
    return wrapped(module, spec.task, device=device, source=spec.source)


def _factory(spec: Spec):
    try:
        module = importlib.import_module(spec.module_name)
    except ModuleNotFoundError as exc:
        raise AuditInputError(
            f"{spec.name}: factory {spec.factory}: no module named {exc.name!r} in this environment; install the "
            f"package that has it, run audit from the folder that holds it, or set PYTHONPATH to that folder"
        ) from None
    factory = getattr(module, spec.attribute, None)
    if not callable(factory):
        raise AuditInputError(f"{spec.name}: factory {spec.factory}: module {spec.module_name!r} has no function "
                              f"{spec.attribute!r}")
    return factory


def _built(factory, spec: Spec) -> nn.Module:
    module = factory(**spec.kwargs)
    if not isinstance(module, nn.Module):
        raise AuditInputError(f"{spec.name}: factory {spec.factory} returned a {type(module).__name__}, "
                              "not a torch.nn.Module")
    return module


def _check_size(module: nn.Module, spec: Spec, max_parameters: int) -> None:
    count = sum(p.numel() for p in module.parameters())
    if count > max_parameters:
        raise AuditInputError(f"{spec.name}: the factory builds {count:,} parameters, above the limit of "
                              f"{max_parameters:,} (Python: max_parameters=...; CLI: --max-parameters N)")


def _check_shapes(found: dict[str, tuple[tuple[int, ...], str]], expected: dict, spec: Spec) -> None:
    """The weights file's tensor names, shapes and dtypes against the module's state dict, one line per
    kind of problem."""
    problems = fit_problems({k: shape for k, (shape, _) in found.items()}, expected, "the module")
    kinds = [f"{k} is {found[k][1]}" for k in expected
             if k in found and expected[k].is_floating_point() and not found[k][1].startswith(("F", "BF"))]
    if kinds:
        problems.append(f"not floating-point: {some(kinds)}")
    if problems:
        raise AuditInputError(f"{spec.name}: weights {spec.weights.name} do not fit the module of {spec.factory} "
                              f"({'; '.join(problems)})")
