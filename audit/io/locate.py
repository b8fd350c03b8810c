"""Which data a command works on: training splits, and the data a report audits."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from audit.io.builtin import load_dataset
from audit.core.dataset import Dataset
from audit._util.errors import AuditInputError
from audit.io.sources import STREAM_ABOVE, Source, data_bytes, open_source, read_data

USER_SPLIT = (0.70, 0.15, 0.15)


def training_splits(
    *,
    dataset: str | None = None,
    data: str | Path | None = None,
    target: str | None = None,
    sensitive: Sequence[str] = (),
    text_column: str | None = None,
    seed: int = 0,
) -> tuple[Dataset, Dataset, Dataset]:
    """Train, validation and test splits of a built-in dataset or of a user's file (seeded 70/15/15)."""
    if (dataset is None) == (data is None):
        raise AuditInputError("give either --dataset NAME (built-in) or --data FILE")
    if dataset is not None:
        return tuple(load_dataset(dataset, split) for split in ("train", "validation", "test"))
    full = read_data(data, target=target, sensitive=sensitive, text_column=text_column)
    source = {**full.source, "sha256": full.sha256, "split_seed": seed}
    parts = full.split(list(USER_SPLIT), seed=seed)
    return tuple(replace(part, source={**source, "split": split})
                 for part, split in zip(parts, ("train", "validation", "test")))


def audit_data(trained_on: dict, *, data: str | Path | None = None, target: str | None = None,
               sensitive: Sequence[str] = (), text_column: str | None = None, classes=None,
               split: str = "test") -> Dataset:
    """The data to audit: the user's file, else the `split` (test, or validation) of the data the model was
    trained on."""
    if data is not None:
        return read_data(data, target=target or trained_on.get("target"),
                         sensitive=sensitive or trained_on.get("sensitive") or (),
                         text_column=text_column or trained_on.get("text_column"), classes=classes)
    if trained_on.get("builtin"):
        return load_dataset(trained_on["builtin"], split)
    path = trained_on.get("path")
    if not path:
        raise AuditInputError("the model does not record the data it was trained on; pass --data FILE")
    if not Path(path).is_file():
        raise AuditInputError(f"the model was trained on {path}, which is not here; pass --data FILE")
    _, validation, test = training_splits(data=path, target=trained_on.get("target"),
                                          sensitive=trained_on.get("sensitive") or (),
                                          text_column=trained_on.get("text_column"),
                                          seed=trained_on.get("split_seed", 0))
    if test.source.get("sha256") != trained_on.get("sha256"):
        raise AuditInputError(f"{path} changed since the model was trained on it; pass --data FILE to audit it")
    return validation if split == "validation" else test


def streamed_source(trained_on: dict, *, data: str | Path | None, stream: bool, target: str | None = None,
                    sensitive: Sequence[str] = (), text_column: str | None = None) -> Source | None:
    """The user's data as a streamed source when asked (`stream`) or when it would take more than STREAM_ABOVE
    bytes in memory (`data_bytes`); None to read it whole (`audit_data`)."""
    if data is None:
        if stream:
            raise AuditInputError("--stream reads the data given with --data FILE (a table, an NPZ or a folder of "
                                  "images)")
        return None
    if not stream and data_bytes(data) <= STREAM_ABOVE:
        return None
    return open_source(data, target=target or trained_on.get("target"),
                       sensitive=sensitive or trained_on.get("sensitive") or (),
                       text_column=text_column or trained_on.get("text_column"))
