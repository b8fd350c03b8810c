"""The per-example table of an audit (`AuditRun.examples()`, `audit report --examples FILE.parquet`).

One row per audited example; its columns:
- `row`: the example's position (from 0) in the audited data (the index of `AuditRun.examples()`);
- `prediction`, `label`: the predicted and the true class name; `probability`: the model's probability of its
  prediction;
- `group.<column>`: the value of each sensitive column, as text;
- `<analyzer>.<what>`: what each per-example analyzer found on the example, null on the rows it did not read:
  robustness's attack outcomes, flip epsilon and corruptions (`audit.analyzers.robustness.per_example`);
  `saliency.<method>.top_features` / `.top_values`, `shap.top_features` / `.top_values` and
  `lime.top_features` / `.top_values`: the most attributed columns, pixels or words, most attributed first, and
  their signed attributions (`audit.methods.attributions.per_example`); `lime.fit_r2`: the R^2 of the example's
  local surrogate.

The columns every row has come from the probabilities the executor feeds the analyzers, not from an analyzer: a
tally (performance, fairness) keeps counts, never rows. In memory the table has every row of the data. A streamed
run reads the rows once: with `examples=True` it writes every row's prediction to a temporary Parquet file in
chunks (`Spill`) while the per-example analyzers read a seeded sample; the file then has every row, with the
analyzers' outcomes on the sample's rows, and `AuditRun.examples()` holds the sample's rows only, so memory stays
bounded either way."""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from audit.core.dataset import Dataset
from audit.core.result import Result

INDEX = "row"
GROUP = "group."
BATCH_ROWS = 65_536  # rows per pass when a spill is joined with the analyzers' outcomes


def example_rows(model, data: Dataset, proba: np.ndarray, rows: np.ndarray) -> pd.DataFrame:
    """The columns every example has: prediction, label and probability of `data` (rows `rows` of the audited data,
    predicted `proba`), and its sensitive values."""
    classes = pd.Categorical.from_codes(np.arange(len(model.classes)), categories=list(model.classes))
    predicted = proba.argmax(axis=1)
    frame = pd.DataFrame({
        "prediction": np.asarray(classes[predicted], dtype=object),
        "label": np.asarray(classes[model.labels(data)], dtype=object),
        "probability": proba[np.arange(len(proba)), predicted].astype(np.float64),
    }, index=pd.Index(np.asarray(rows, dtype=np.int64), name=INDEX))
    for name in data.sensitive_names:
        values = data.sensitive[name]
        frame[f"{GROUP}{name}"] = np.where(values.isna(), None, values.astype(str)).astype(object)
    return frame


def in_data_rows(result: Result, rows: np.ndarray) -> Result:
    """`result` with its per-example outcomes indexed by the rows of the audited data: the analyzer read the sample
    whose positions are rows `rows` of the data."""
    if result.examples is None:
        return result
    index = pd.Index(np.asarray(rows, dtype=np.int64)[result.examples.index.to_numpy()], name=INDEX)
    return dataclasses.replace(result, examples=result.examples.set_axis(index))


def outcomes(results: Iterable[Result]) -> pd.DataFrame:
    """Every analyzer's per-example outcomes side by side, one row per example any of them read."""
    frames = [r.examples for r in results if r.examples is not None]
    if not frames:
        return pd.DataFrame(index=pd.Index([], dtype=np.int64, name=INDEX))
    return pd.concat(frames, axis=1, join="outer").sort_index().rename_axis(INDEX)


def joined(rows: pd.DataFrame, results: Iterable[Result]) -> pd.DataFrame:
    """The per-example table of `rows` (`example_rows`): their columns and the analyzers' outcomes on them."""
    return rows.join(outcomes(results), how="left")


def schema(columns: Sequence[str], found: pd.DataFrame) -> pa.Schema:
    """The file's columns: `row`, the `columns` every row has (`example_rows`), then the analyzers' `found`
    (typed by what they hold on the rows they read), so every chunk of a streamed file has the same schema
    whether or not a sampled row is in it."""
    kinds = {"probability": pa.float64()}
    fields = [pa.field(INDEX, pa.int64())] + [pa.field(c, kinds.get(c, pa.string())) for c in columns]
    return pa.schema(fields + list(pa.Schema.from_pandas(found, preserve_index=False)))


def _table(frame: pd.DataFrame, file_schema: pa.Schema) -> pa.Table:
    return pa.Table.from_pandas(frame.reset_index(), schema=file_schema, preserve_index=False)


def write_parquet(f: BinaryIO, chunks: Iterable[pd.DataFrame], found: pd.DataFrame) -> None:
    """Write the per-example table whose rows come in `chunks` (`example_rows`, at least one), joined with `found`
    (`outcomes`), to the open binary file `f`, one row group per chunk."""
    writer = None
    for chunk in chunks:
        if writer is None:
            writer = pq.ParquetWriter(f, schema(list(chunk.columns), found))
        writer.write_table(_table(chunk.join(found, how="left"), writer.schema))
    writer.close()


class Spill:
    """Every row's prediction, written to a temporary Parquet file in chunks as a streamed run reads them.

    `tap` passes the (chunk, probabilities) pairs on unchanged; `chunks` reads the rows back in batches. The
    folder goes when the spill does."""

    def __init__(self, model):
        self.model = model
        self._folder = tempfile.TemporaryDirectory(prefix="audit-examples-")
        self.path = Path(self._folder.name) / "rows.parquet"
        self.rows = 0

    def tap(self, pairs: Iterable[tuple[Dataset, np.ndarray]]) -> Iterator[tuple[Dataset, np.ndarray]]:
        writer = None
        try:
            for chunk, proba in pairs:
                rows = example_rows(self.model, chunk, proba, np.arange(self.rows, self.rows + len(chunk)))
                if writer is None:
                    writer = pq.ParquetWriter(self.path, schema(list(rows.columns), pd.DataFrame()))
                writer.write_table(_table(rows, writer.schema))
                self.rows += len(chunk)
                yield chunk, proba
        finally:
            if writer is not None:
                writer.close()

    def chunks(self) -> Iterator[pd.DataFrame]:
        if not self.path.exists():  # no chunk came
            return
        for batch in pq.ParquetFile(self.path).iter_batches(batch_size=BATCH_ROWS):
            yield batch.to_pandas().set_index(INDEX)
