"""Which class an attribution explains: a class given by index or name, or one per example."""

from __future__ import annotations

import numpy as np

from audit.core.dataset import Dataset
from audit._util.errors import AuditInputError


def class_index(model, target: int | str | None) -> int | None:
    """The index of class `target` (an index or a class name), or None (explain the predicted class)."""
    if target is None or isinstance(target, int):
        if target is not None and not 0 <= target < len(model.classes):
            raise AuditInputError(f"target class {target} is not in 0..{len(model.classes) - 1}")
        return target
    if target not in model.classes:
        raise AuditInputError(f"target class {target!r} is not a class of the model {list(model.classes)}")
    return model.classes.index(target)


def resolve_target(model, data: Dataset, target) -> np.ndarray:
    """One class index per example: the predicted class for None, else `target` (a class index,
    or one per example) broadcast and checked."""
    if target is None:
        return model.predict_proba(data).argmax(axis=1)
    classes = len(model.classes)
    values = np.broadcast_to(np.asarray(target), (len(data),)) if np.ndim(target) == 0 else np.asarray(target)
    if values.shape != (len(data),) or not np.issubdtype(values.dtype, np.integer):
        raise AuditInputError(
            f"target must be a class index or one integer per example ({len(data)}), found {values.dtype} "
            f"of shape {values.shape}")
    if values.min() < 0 or values.max() >= classes:
        raise AuditInputError(f"target classes must be in 0..{classes - 1}; found {values.min()}..{values.max()}")
    return values.astype(np.int64)
