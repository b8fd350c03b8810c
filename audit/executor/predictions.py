"""Audits of predictions that already exist, from any model: performance and fairness need no model.

A table holds, per row, the true label, the model's output and the sensitive columns. The
output is either a column of predicted labels (each row's probability is then 1 for its
predicted class) or per-class score columns, in the order of the classes (a binary model
may give one column: the score of the second class). `Predictions` stands in for a
`Model` for the analyzers that read only its outputs (`Analyzer.needs_model` False); every
other analyzer is reported as skipped, with the reason.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from audit._util.errors import AuditInputError
from audit._util.paths import input_file, shown
from audit.core.analyzer import Analyzer
from audit.core.dataset import Dataset
from audit.core.groups import SensitiveValues
from audit.executor.loop import Feed, execute
from audit.executor.runner import AuditRun, assemble, resolve_analyzers
from audit.io.sources import STREAM_ABOVE, data_bytes
from audit.io.tables import TableSource, read_table
from audit.policy.gates import Policy


@dataclasses.dataclass(frozen=True, eq=False)
class Predictions:
    """A model known only by its outputs on one table: class probabilities (rows, classes)."""

    proba: np.ndarray
    classes: tuple[str, ...]
    source: dict = dataclasses.field(default_factory=dict)
    modality: str = "tabular"

    def predict_proba(self, data: Dataset) -> np.ndarray:
        if len(data) != len(self.proba):
            raise AuditInputError(f"predictions are for {len(self.proba)} rows, the data has {len(data)}")
        return self.proba

    def predict(self, data: Dataset) -> np.ndarray:
        return self.predict_proba(data).argmax(axis=1)

    def labels(self, data: Dataset) -> np.ndarray:
        return data.labels


def read_predictions(frame: pd.DataFrame, *, target: str, prediction: str | None = None,
                     scores: Sequence[str] = (), sensitive: Sequence[str] = (),
                     classes: Sequence[str] | None = None, name: str = "predictions", source: dict | None = None
                     ) -> tuple[Predictions, Dataset]:
    """The predictions and the labelled rows they are for, from a table with the `target` label column, either a
    `prediction` column of predicted labels or `scores` columns, and the `sensitive` columns."""
    where = (source or {}).get("path", name)
    columns = [str(c) for c in frame.columns]
    frame = frame.set_axis(columns, axis=1).reset_index(drop=True)
    if (prediction is None) == (not scores):
        raise AuditInputError(f"{where}: give either a prediction column or score columns (not both, not neither)")
    _check_columns(columns, where, target=target, prediction=prediction, scores=scores, sensitive=sensitive)
    used = [target, *([prediction] if prediction else scores), *sensitive]
    missing = [c for c in used if frame[c].isna().any()]
    if missing:
        raise AuditInputError(f"{where}: column {missing[0]!r} has missing values")
    truth = frame[target].astype(str)
    if classes is None:
        found = set(truth) | (set(frame[prediction].astype(str)) if prediction else set())
        classes = sorted(found, key=lambda c: (float(c), c) if _is_number(c) else (float("inf"), c))
    classes = tuple(str(c) for c in classes)
    index = {c: i for i, c in enumerate(classes)}
    unknown = sorted(set(truth) - set(index))
    if unknown:
        raise AuditInputError(f"{where}: target column {target!r} holds {unknown[:5]}, not among the classes "
                              f"{list(classes)}")
    if len(classes) < 2:
        raise AuditInputError(f"{where}: a single class {list(classes)}; at least two are needed")
    proba = _proba(frame, prediction, scores, classes, index, where)
    data = Dataset(inputs=pd.DataFrame(index=frame.index), labels=truth.map(index).to_numpy(dtype=np.int64),
                   classes=classes, modality="tabular", sensitive=frame[list(sensitive)].copy(), name=name,
                   target=target, source=source or {})
    return Predictions(proba, classes, source=dict(source or {})), data


def _check_columns(columns: list[str], where: str, *, target, prediction, scores, sensitive) -> None:
    for role, col in [("target", target), ("prediction", prediction), *[("score", c) for c in scores],
                      *[("sensitive", c) for c in sensitive]]:
        if col is not None and col not in columns:
            raise AuditInputError(f"{where}: {role} column {col!r} not found; columns are: {', '.join(columns)}")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _proba(frame, prediction, scores, classes, index, where) -> np.ndarray:
    if prediction is not None:
        predicted = frame[prediction].astype(str)
        unknown = sorted(set(predicted) - set(index))
        if unknown:
            raise AuditInputError(f"{where}: prediction column {prediction!r} holds {unknown[:5]}, not among the "
                                  f"classes {list(classes)}")
        return np.eye(len(classes))[predicted.map(index).to_numpy()]
    values = frame[list(scores)]
    if not all(pd.api.types.is_numeric_dtype(values[c]) for c in values.columns):
        raise AuditInputError(f"{where}: score columns must be numbers")
    values = values.to_numpy(dtype=np.float64)
    if len(scores) == 1 and len(classes) == 2:
        if values.min() < 0 or values.max() > 1:
            raise AuditInputError(f"{where}: score column {scores[0]!r} must lie in [0, 1] (the second class's "
                                  "probability)")
        return np.column_stack([1 - values[:, 0], values[:, 0]])
    if len(scores) != len(classes):
        raise AuditInputError(f"{where}: {len(scores)} score columns for {len(classes)} classes {list(classes)}; "
                              "give one per class, in that order")
    if values.min() < 0 or (values.sum(axis=1) <= 0).any():
        raise AuditInputError(f"{where}: scores must be non-negative with a positive sum in every row")
    return values / values.sum(axis=1, keepdims=True)


def from_predictions(table: pd.DataFrame | str | Path, *, target: str, prediction: str | None = None,
                     scores: Sequence[str] = (), sensitive: Sequence[str] = (), classes: Sequence[str] | None = None,
                     analyzers: Sequence[str | Analyzer] | None = None, seed: int = 0, policy: Policy | None = None,
                     options: dict[str, dict] | None = None, command: str | None = None, stream: bool = False,
                     chunk_rows: int | None = None) -> AuditRun:
    """Audit predictions that already exist (a DataFrame, or a CSV or Parquet file): the analyzers that need no
    model run (`needs_model = False`), every other one chosen is reported as skipped with the reason. A file is
    read in chunks of `chunk_rows` when `stream` or larger than STREAM_ABOVE: the same numbers, in bounded
    memory."""
    columns = dict(target=target, prediction=prediction, scores=scores, sensitive=sensitive)
    chosen = resolve_analyzers(analyzers, options)
    started = datetime.now(timezone.utc)
    if not isinstance(table, pd.DataFrame) and (stream or data_bytes(table) > STREAM_ABOVE):
        model, feed, described = _streamed(Path(table), columns, classes, chunk_rows)
    else:
        model, data = _read_whole(table, columns, classes)
        feed = Feed(first=data, chunks=[(data, model.proba)], values=SensitiveValues.of(data.sensitive),
                    rows=len(data), whole=data, model_given=False)
        described = data
    executed = execute(model, feed, chosen, seed=seed, thresholds=(policy or Policy()).thresholds)
    source = model.source
    output = f"column {prediction!r}" if prediction else f"score columns {list(scores)}"
    model_described = {"path": source.get("path"), "sha256": source.get("sha256"),
                       "architecture": "predictions (no model)", "modality": "tabular", "classes": list(model.classes),
                       "trained_on": {}, "training_metrics": {}, "output": output}
    return assemble(model_described, described, executed.results, seed=seed, policy=policy, started=started,
                    command=command, device="none")


def _read_whole(table, columns: dict, classes) -> tuple[Predictions, Dataset]:
    source = {}
    if not isinstance(table, pd.DataFrame):
        path = Path(table)
        frame = read_table(path)
        source = {"path": str(path), "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
        name = path.stem
    else:
        frame, name = table, "predictions"
    return read_predictions(frame, **columns, classes=classes, name=name, source=source)


def _streamed(path: Path, columns: dict, classes, chunk_rows: int | None) -> tuple[Predictions, Feed, dict]:
    """The predictions of a table read in chunks: a first pass over the label, prediction and sensitive columns
    (classes, groups), then the chunks, each with the probabilities its columns give."""
    table = TableSource(input_file(path, whole=False), target=columns["target"], sensitive=columns["sensitive"],
                        text_column=None)
    rows = chunk_rows or table.chunk_rows
    first_rows = table.frames(None, 1)
    head = next(first_rows, None)
    first_rows.close()
    if head is None:
        raise AuditInputError(f"{shown(path)}: no rows (the file is empty)")
    if (columns["prediction"] is None) == (not columns["scores"]):
        raise AuditInputError(f"{shown(path)}: give either a prediction column or score columns (not both, not "
                              "neither)")
    _check_columns([str(c) for c in head.columns], shown(path), **columns)
    outputs = [columns["prediction"]] if columns["prediction"] else []
    seen, values, found = 0, SensitiveValues(), set()
    for frame in table.frames([columns["target"], *outputs, *columns["sensitive"]], rows):
        seen += len(frame)
        values.add(frame[list(columns["sensitive"])])
        found.update(str(v) for c in [columns["target"], *outputs] for v in pd.unique(frame[c]))
    if classes is None:
        classes = sorted(found, key=lambda c: (float(c), c) if _is_number(c) else (float("inf"), c))
    source = {"path": str(path), "sha256": table.sha256()}
    model = Predictions(np.empty((0, len(classes))), tuple(str(c) for c in classes), source=source)
    _, probe = read_predictions(head, **columns, classes=model.classes, name=path.stem)

    def chunks():
        for frame in table.frames(None, rows):
            chunk_model, chunk = read_predictions(frame.reset_index(drop=True), **columns, classes=model.classes,
                                                  name=path.stem, source=source)
            yield chunk, chunk_model.proba

    feed = Feed(first=probe, chunks=chunks(), values=values, rows=seen, progress="predictions", model_given=False)
    described = {"name": path.stem, "sha256": source["sha256"], "rows": seen, "modality": "tabular",
                 "target": columns["target"], "classes": list(model.classes), "sensitive": list(columns["sensitive"]),
                 "source": {**source, "streamed": True}}
    return model, feed, described
