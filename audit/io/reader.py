"""`Source`: the one reader interface of a data format (tables, NPZ, image folders), read in chunks or whole.

A reader yields `Dataset` parts of a number of rows, in order. The chunked read (streaming) asks for parts of
`chunk_rows`; the whole read asks for all rows in one part. Both go through the same `parts`, so every check
and conversion of a format is made in one place and the two reads cannot drift.

Before the chunks, `census` reads only the label and sensitive columns: the rows, the classes (when the model
does not give them) and every sensitive value counted (`SensitiveValues`), so that groups are decided once
for the whole data. Neither pass holds more than a chunk. Each part carries, beside its sensitive columns, the
other columns the data holds (`Dataset.attributes`: an image folder's other metadata columns, a text table's
other columns, an NPZ's other arrays), so that a streamed run sees what a whole read sees.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from audit.core.dataset import Dataset
from audit.core.groups import SensitiveValues
from audit._util.errors import AuditInputError
from audit._util.paths import shown

TABLE_CHUNK_ROWS = 65_536
IMAGE_CHUNK_ROWS = 512


@dataclass
class Census:
    """What one pass over the labels and sensitive columns tells: rows, classes, sensitive values."""

    rows: int
    classes: tuple[str, ...]
    values: SensitiveValues


class Source(ABC):
    """Data on disk, read in parts: chunks of `chunk_rows` rows, or whole."""

    modality: str
    chunk_rows: int

    def __init__(self, path: Path, *, target: str | None, sensitive: Sequence[str], text_column: str | None):
        self.path, self.target, self.sensitive, self.text_column = path, target, list(sensitive), text_column
        self.name = shown(path.stem if path.is_file() else path.name)
        self.describe = {"path": shown(path), "target": target, "sensitive": list(sensitive),
                         "text_column": text_column}

    @abstractmethod
    def census(self, classes: Sequence[str] | None = None, rows: int | None = None) -> Census:
        """One pass over labels and sensitive columns, `rows` at a time (default `chunk_rows`); `classes` (the
        model's) fix the label encoding."""

    @abstractmethod
    def parts(self, classes: Sequence[str] | None, rows: int | None) -> Iterator[Dataset]:
        """The data as `Dataset` parts of `rows` rows (the last may be shorter), or all of it in one part when
        `rows` is None. Labels are encoded with `classes` where the data do not name their own (a folder's, an
        NPZ's `classes` array); with None, with the classes found in each part."""

    def chunks(self, classes: Sequence[str], rows: int | None = None) -> Iterator[Dataset]:
        """The data as `Dataset` chunks of `rows` rows (default `chunk_rows`; the last may be shorter)."""
        return self.parts(classes, rows or self.chunk_rows)

    def read(self, classes: Sequence[str] | None = None) -> Dataset:
        """The whole data in one `Dataset`, labels encoded with `classes` (default: those found in the data)."""
        (whole,) = self.parts(classes, None)
        return whole

    def sha256(self) -> str:
        """Hash of the file's bytes, read in blocks."""
        digest = hashlib.sha256()
        with open(self.path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        return digest.hexdigest()


def counted_from(error: AuditInputError, start: int) -> AuditInputError:
    """`error` raised on a chunk, whose row numbers count from its first row, with the row of the file it starts at."""
    return AuditInputError(f"{error} [rows counted from row {start:,} of the file]")


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (at most 200 characters), for a one-line error."""
    lines = str(exc).strip().splitlines()
    return lines[0][:200] if lines else type(exc).__name__
