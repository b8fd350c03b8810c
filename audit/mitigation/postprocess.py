"""Post-processing a trained model: group-specific thresholds fitted on validation data, applied when it predicts."""

from __future__ import annotations

from dataclasses import replace

import pandas as pd
from fairlearn.postprocessing import ThresholdOptimizer

from audit.core.dataset import Dataset
from audit._util.errors import AuditInputError
from audit.methods.fairness.thresholds import fit_thresholds
from audit.core.model import Model


def with_thresholds(model: Model, validation: Dataset, *, column: str, constraint: str, seed: int = 0,
                    positive_class: str | None = None, tol: float | None = None) -> tuple[Model, ThresholdOptimizer]:
    """`model` with group thresholds on `column` fitted on `validation` (fairlearn's ThresholdOptimizer,
    prefit, on the positive-class probability; `tol` relaxes demographic parity), and the fitted optimizer. The
    new model needs `column` at prediction time."""
    if model.task.postprocessing is not None:
        raise AuditInputError(f"the model already applies group thresholds by {model.task.postprocessing.column!r}; "
                              "post-process the model they were fitted on")
    if len(model.classes) != 2:
        raise AuditInputError(f"group thresholds need a model with two classes, this one has {len(model.classes)}")
    positive = positive_index(model, positive_class)
    groups = group_column(validation, column)
    proba = model.proba(model.encode(validation))
    rule, optimizer = fit_thresholds(proba, model.labels(validation), groups, column=column, constraint=constraint,
                                     positive=positive, seed=seed, tol=tol)
    task = replace(model.task, postprocessing=rule)
    return Model(model.module, task, architecture=model.architecture, config=model.config, device=model.device,
                 batch_size=model.batch_size), optimizer


def group_column(data: Dataset, column: str) -> pd.Series:
    """`column` of `data`'s sensitive attributes, else of its table inputs."""
    for frame in (data.sensitive, data.inputs):
        if isinstance(frame, pd.DataFrame) and column in frame.columns:
            return frame[column].reset_index(drop=True)
    raise AuditInputError(f"{data.source.get('path', data.name)}: no column {column!r}; sensitive columns: "
                          f"{', '.join(data.sensitive_names) or 'none'}")


def positive_index(model: Model, name: str | None) -> int:
    """The index of the favourable class `name` (`--positive-class`); the second class when None."""
    if name is None:
        return 1
    if str(name) not in model.classes:
        raise AuditInputError(f"--positive-class {name!r} is not a class of the model {list(model.classes)}")
    return model.classes.index(str(name))
