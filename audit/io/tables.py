"""Tables: CSV (plain, gzip, bz2, xz or a zip of one file) and Parquet, read in chunks or whole by one reader.

- Parquet: pyarrow, batch by batch through the row groups, or the whole table at once;
- CSV: pandas' reader on the file's bytes, in chunks or in one frame with the same options, so every value
  parses the same either way. A line longer than MAX_LINE_BYTES is refused: pandas holds a whole line in
  memory, and a file without line breaks is one line.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import zipfile
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path

import pandas as pd

from audit.core.dataset import Dataset, found_classes, require_complete
from audit.core.groups import SensitiveValues
from audit._util.errors import AuditInputError
from audit._util.paths import input_file, shown
from audit.io.reader import TABLE_CHUNK_ROWS, Census, Source, counted_from, first_line

MAX_LINE_BYTES = 64 << 20
SAMPLE_BYTES = 1 << 20  # of a CSV's text, read to estimate its size in memory
STRING_BYTES = 64  # a string value in a DataFrame: a pointer and a Python str of a few dozen characters
UNREADABLE = (pd.errors.ParserError, UnicodeDecodeError, OSError, EOFError, ValueError, OverflowError,
              zlib.error, lzma.LZMAError, zipfile.BadZipFile)


def _zip_member(path: Path, mode: str):
    """The one file of a zip archive, opened (pandas reads `table.csv.zip` so)."""
    archive = zipfile.ZipFile(path)
    names = [n for n in archive.namelist() if not n.endswith("/")]
    if len(names) != 1:
        archive.close()
        raise AuditInputError(f"{shown(path)}: cannot read as a table (a zip of {len(names)} files; "
                              "zip one table alone)")
    return archive.open(names[0], mode[0])


DECOMPRESS = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open, ".zip": _zip_member}


def _is_parquet(path: Path) -> bool:
    return "".join(path.suffixes[-2:]).lower().endswith((".parquet", ".pq"))


def frames(path: Path, columns: Sequence[str] | None = None, rows: int | None = None) -> Iterator[pd.DataFrame]:
    """The table `path` as DataFrames of `rows` rows (all in one when None), only `columns` when given."""
    where = shown(path)
    try:
        if _is_parquet(path):
            yield from _parquet_frames(path, columns, rows, where)
        else:
            opener = DECOMPRESS.get(path.suffix.lower(), open)
            with opener(path, "rb") as raw:
                reader = pd.read_csv(_LineBounded(raw, where), skipinitialspace=True, chunksize=rows,
                                     usecols=(lambda c: c in columns) if columns else None)
                if rows is None:
                    yield reader
                else:
                    with reader:
                        yield from reader
    except AuditInputError:
        raise
    except pd.errors.EmptyDataError:
        raise AuditInputError(f"{where}: no rows (the file is empty)") from None
    except UNREADABLE as exc:
        raise AuditInputError(f"{where}: cannot read as a table ({first_line(exc)})") from None


def _parquet_frames(path: Path, columns, rows: int | None, where: str) -> Iterator[pd.DataFrame]:
    import pyarrow.parquet as pq

    table = pq.ParquetFile(path)
    names = table.schema_arrow.names
    for column in columns or ():
        if column not in names:
            raise AuditInputError(f"{where}: column {column!r} not found; columns are: {', '.join(names)}")
    if rows is None:
        yield table.read(columns=columns).to_pandas()
    else:
        for batch in table.iter_batches(batch_size=rows, columns=columns):
            yield batch.to_pandas()


def memory_bytes(path: Path) -> int:
    """About how many bytes the table takes read whole into a DataFrame (the file's size where it cannot tell):
    a Parquet file's rows times its columns' widths from the metadata (strings counted generously), a CSV's
    text size times the in-memory bytes per text byte of its first block."""
    try:
        return _parquet_bytes(path) if _is_parquet(path) else _csv_bytes(path)
    except (AuditInputError, pd.errors.EmptyDataError, *UNREADABLE):
        return path.stat().st_size


def _parquet_bytes(path: Path) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    file = pq.ParquetFile(path)
    width = sum(1 if pa.types.is_boolean(t) else t.bit_width // 8 if pa.types.is_primitive(t) else STRING_BYTES
                for t in file.schema_arrow.types)
    return file.metadata.num_rows * max(width, 1)


def _csv_bytes(path: Path) -> int:
    """The in-memory size of the first block of text (up to a line break) scaled to the whole text: the text's
    size is the file's, or for a compressed file the file's times the first block's expansion."""
    suffix = path.suffix.lower()
    with open(path, "rb") as raw:
        if suffix == ".zip":
            with zipfile.ZipFile(raw) as archive:
                text_bytes = sum(m.file_size for m in archive.infolist())
                with _zip_member(path, "rb") as member:
                    block = member.read(SAMPLE_BYTES)
        elif suffix in DECOMPRESS:
            with DECOMPRESS[suffix](raw, "rb") as text:  # read well past the decompressor's read-ahead
                block = text.read(8 * SAMPLE_BYTES)
                text_bytes = len(block) * path.stat().st_size / max(raw.tell(), 1)
                block = block[:SAMPLE_BYTES]
            if suffix == ".gz":  # the trailer holds the text's size modulo 4 GiB; the reader reads ahead
                raw.seek(-4, io.SEEK_END)
                text_bytes = max(text_bytes, int.from_bytes(raw.read(4), "little"))
        else:
            block, text_bytes = raw.read(SAMPLE_BYTES), path.stat().st_size
    whole = len(block) < SAMPLE_BYTES
    block = block if whole else block[:block.rfind(b"\n") + 1]
    if not block:
        raise EOFError("no whole line in the first block")
    frame = pd.read_csv(io.BytesIO(block), skipinitialspace=True)
    used = frame.memory_usage(deep=True, index=False).sum()
    return int(used) if whole else int(used / len(block) * text_bytes)


def read_table(path: str | Path) -> pd.DataFrame:
    """A CSV or Parquet file, read whole (within the input size limit), as a DataFrame."""
    (frame,) = frames(input_file(path))
    return frame


class TableSource(Source):
    """A CSV or Parquet table: tabular rows, or text with `text_column`."""

    chunk_rows = TABLE_CHUNK_ROWS

    def __init__(self, path: Path, **kwargs):
        super().__init__(path, **kwargs)
        if self.target is None:
            raise AuditInputError(f"{shown(path)}: --target COL is needed to read labels from a table")
        self.modality = "text" if self.text_column else "tabular"

    def frames(self, columns: list[str] | None, rows: int | None) -> Iterator[pd.DataFrame]:
        """The table `rows` rows at a time (all in one when None), as DataFrames (only `columns`, when given)."""
        return frames(self.path, columns, rows)

    def census(self, classes=None, rows=None) -> Census:
        where = shown(self.path)
        wanted = list(dict.fromkeys([self.target, *self.sensitive]))
        seen, values, labels = 0, SensitiveValues(), []
        for frame in self.frames(wanted, rows or self.chunk_rows):
            missing = [c for c in wanted if c not in frame.columns]
            if missing:
                raise AuditInputError(f"{where}: column {missing[0]!r} not found; columns are: "
                                      f"{', '.join(map(str, frame.columns))}")
            require_complete(frame[self.target], f"{where}: target column {self.target!r}", first_row=seen)
            seen += len(frame)
            values.add(frame[self.sensitive])
            if classes is None:
                labels.append(pd.Series(pd.unique(frame[self.target])))
                labels = [pd.Series(pd.unique(pd.concat(labels)))]
        if seen == 0:
            raise AuditInputError(f"{where}: no rows (the table is empty)")
        if classes is None:
            classes = found_classes(labels[0], where=f"{where}: target column {self.target!r}")
        return Census(seen, tuple(classes), values)

    def parts(self, classes, rows):
        start = 0
        for frame in self.frames(None, rows):
            try:
                yield Dataset.from_dataframe(frame, target=self.target, sensitive=self.sensitive,
                                             text_column=self.text_column, classes=classes, name=self.name,
                                             source=self.describe)
            except AuditInputError as exc:
                if rows is None:
                    raise
                raise counted_from(exc, start) from None
            start += len(frame)


class _LineBounded(io.RawIOBase):
    """A binary file that refuses, with one clear line, a line longer than MAX_LINE_BYTES."""

    def __init__(self, raw, where: str):
        self.raw, self.where, self.run = raw, where, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        n = self.raw.readinto(buffer)
        if n:
            end = bytes(memoryview(buffer)[:n]).rfind(b"\n")
            self.run = self.run + n if end < 0 else n - end - 1
            if self.run > MAX_LINE_BYTES:
                raise AuditInputError(f"{self.where}: cannot read as a table (a line longer than "
                                      f"{MAX_LINE_BYTES >> 20} MiB; is it a CSV file?)")
        return n
