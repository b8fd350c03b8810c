"""Several attribution methods on one model: the default choice for a model, and a run of
each that reports the methods that cannot run as warnings instead of failing."""

from __future__ import annotations

from collections.abc import Mapping

from torch import nn

from audit.methods.attributions.registry import get_method
from audit.core.analyzer import Cost
from audit.core.dataset import Dataset
from audit._util.errors import AuditInputError
from audit.methods.attributions.explain import explain
from audit.methods.attributions.shared import shared

DEFAULT_METHODS = ("integrated_gradients", "saliency", "gradient_shap", "grad_cam")
OCCLUSION_PASSES = 64  # planned forwards per example of occlusion, whose windows depend on the input


def methods_for(model, methods: tuple[str, ...] | None) -> tuple[list[str], list[str]]:
    """The methods to run on `model` and warnings for those that cannot: the defaults that fit
    the model when `methods` is None (Grad-CAM only for CNNs), else the named ones."""
    if methods is None:
        has_conv = any(isinstance(m, nn.Conv2d) for m in model.module.modules())
        names = [m for m in DEFAULT_METHODS if m != "grad_cam" or has_conv]
    else:
        names = list(dict.fromkeys(methods))
    runnable, warnings = [], []
    for name in names:
        if model.modality in get_method(name).modalities:
            runnable.append(name)
        else:
            warnings.append(f"{name} skipped: it does not support {model.modality} models")
    return runnable, warnings


def attribute_all(model, data: Dataset, methods: list[str], target, *, seed: int,
                  options: Mapping[str, dict] | None = None):
    """Attributions per method that ran (each called with its `options`, where given), and a warning per method
    that could not run; the same call again on the same model reads the attributions it kept (`shared`)."""
    attributions, warnings = {}, []
    for name in methods:
        given = (options or {}).get(name, {})
        try:
            attributions[name] = shared(model, data, name, get_method(name).fn, target, seed,
                                        lambda name=name, given=given: explain(model, data, name, target, seed=seed,
                                                                               **given),
                                        tuple(sorted(given.items())))
        except AuditInputError as exc:
            warnings.append(f"{name} skipped: {exc}")
    return attributions, warnings


def attribution_cost(model, methods: tuple[str, ...] | None) -> Cost:
    """The passes of `methods` (None: the defaults for `model`) per explained example: each gradient method's
    evaluations forward and back, occlusion's forwards (one per window or feature: OCCLUSION_PASSES planned)."""
    names, _ = methods_for(model, methods)
    passes = [get_method(name).passes for name in names]
    return Cost(forward=OCCLUSION_PASSES * passes.count(None), backward=sum(p for p in passes if p))
