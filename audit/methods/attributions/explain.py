"""`audit.explain`: attributions of a model's decisions as a plain numpy array."""

from __future__ import annotations

import inspect

import numpy as np
import pandas as pd
import torch

from audit.methods.attributions import get_method, list_methods
from audit.methods.attributions.targets import resolve_target
from audit.core.dataset import Dataset
from audit._util.errors import AuditInputError
from audit.core.model import Model

_CALL_ARGUMENTS = ("model", "data", "target", "seed")


def explain(model: Model, data, method: str = "integrated_gradients", target=None, *, seed: int = 0,
            **options) -> np.ndarray:
    """Attributions of `method` for each example of `data`, shaped like the model's inputs:
    (N, features) in model space for tables, (N, C, H, W) for images, (N, max_length)
    per word for text, word j of `model.encoder.tokens(text)` at column j (zero after the
    last word; a Hugging Face model's subwords summed per word).

    `data` is a `Dataset`, or raw inputs as `Model.predict_proba` takes them (a DataFrame,
    an image array, a list of strings). `target=None` explains the predicted class; an
    int explains that class for every example, an array one class per example.
    `options` go to the method (e.g. `n_steps` for integrated_gradients, `background` for shap:
    a row count, or rows as a Dataset, raw inputs like `data`, or a tensor of model inputs).
    """
    entry = get_method(method)
    data = as_dataset(model, data)
    if model.modality not in entry.modalities:
        raise AuditInputError(
            f"attribution method {method!r} does not support {model.modality} models; "
            f"for {model.modality}: {', '.join(list_methods(model.modality))}")
    accepted = [p for p in inspect.signature(entry.fn).parameters if p not in _CALL_ARGUMENTS]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise AuditInputError(
            f"attribution method {method!r} has no option(s) {', '.join(unknown)}; "
            f"options: {', '.join(accepted) or 'none'}")
    if "background" in options and not isinstance(options["background"], (int, Dataset, torch.Tensor)):
        options["background"] = as_dataset(model, options["background"])
    return entry.fn(model, data, resolve_target(model, data, target), seed=seed, **options)


def as_dataset(model: Model, data) -> Dataset:
    """`data` as a Dataset of the model's modality (labels of raw inputs are placeholders)."""
    if not isinstance(data, Dataset):
        data = _raw_dataset(model, data)
    if data.modality != model.modality:
        raise AuditInputError(f"{data.name}: the model reads {model.modality} data, the data is {data.modality}")
    if len(data) == 0:
        raise AuditInputError(f"{data.name}: no examples to explain")
    return data


def _raw_dataset(model: Model, raw) -> Dataset:
    if model.modality == "text" and (isinstance(raw, str) or (len(raw) and isinstance(raw[0], str))):
        inputs = np.array([raw] if isinstance(raw, str) else [str(t) for t in raw], dtype=object)
    elif model.modality == "tabular" and isinstance(raw, pd.DataFrame):
        inputs = raw.reset_index(drop=True)
    elif model.modality == "image" and isinstance(raw, np.ndarray) and raw.ndim in (3, 4):
        inputs = np.ascontiguousarray(raw[:, None] if raw.ndim == 3 else raw, dtype=np.float32)
    else:
        expected = {"tabular": "a DataFrame", "image": "an array (N, H, W) or (N, C, H, W)",
                    "text": "a string or a list of strings"}[model.modality]
        raise AuditInputError(f"explain needs a Dataset or {expected} for a {model.modality} model, "
                              f"found {type(raw).__name__}")
    return Dataset(inputs, np.zeros(len(inputs), dtype=np.int64), model.classes, model.modality, name="inputs")
