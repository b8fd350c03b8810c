"""Data read in chunks: a source yields `Dataset` chunks of a fixed number of rows, in order.

- Parquet: pyarrow, batch by batch through the row groups;
- CSV: pandas' reader in chunks, with the options the whole-file reader uses (so every value parses the same);
- NPZ: each array read row by row from its member of the archive (compressed or not), never whole;
- a folder of images in the `class_name/file.png` layout: classes are the sub-folder names, each image
  read with Pillow, pixels scaled to [0, 1], channels those of the first image (grey or RGB). Per-image
  attributes (sensitive columns) come from a `metadata.csv` or `metadata.parquet` at the folder's root, one
  row per image named by its `file_name` (`cat/001.png`), as in Hugging Face's `imagefolder`: read once
  (one small row per image), and joined to the images as they are read.

Before the chunks, `census` reads only the label and sensitive columns: the rows, the classes
(when the model does not give them) and every sensitive value counted (`SensitiveValues`),
so that groups are decided once for the whole data. Neither pass holds more than a chunk.
"""

from __future__ import annotations

import hashlib
import io
import math
import stat
import zipfile
import zlib
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd

from audit.core.dataset import Dataset, _check_npy_header, _encode_labels, _first_line, _npz_classes, read_table
from audit._util.errors import AuditInputError
from audit.core.groups import SensitiveValues
from audit._util.paths import input_file, shown
from audit.io.limits import STREAM_ABOVE

MAX_LINE_BYTES = 64 << 20  # a CSV line longer than this is refused: the reader would hold all of it
TABLE_CHUNK_ROWS = 65_536
IMAGE_CHUNK_ROWS = 512
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
METADATA_FILES = ("metadata.csv", "metadata.parquet")
NAMED = 3  # images or rows named in a message about the metadata


@dataclass
class Census:
    """What one pass over the labels and sensitive columns tells: rows, classes, sensitive values."""

    rows: int
    classes: tuple[str, ...]
    values: SensitiveValues


class Source(ABC):
    """Data on disk, read in chunks."""

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
    def chunks(self, classes: tuple[str, ...], rows: int | None = None) -> Iterator[Dataset]:
        """The data as `Dataset` chunks of `rows` rows (default `chunk_rows`; the last may be shorter), labels
        encoded with `classes` where the data do not name their own (a folder's, an NPZ's `classes` array)."""

    def sha256(self) -> str:
        """Hash of the file's bytes, read in blocks."""
        digest = hashlib.sha256()
        with open(self.path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        return digest.hexdigest()


def _classes_of(labels: pd.Series, where: str) -> tuple[str, ...]:
    """The classes `Dataset.from_dataframe` would find in the whole label column, from its distinct values."""
    return _encode_labels(pd.Series(pd.unique(labels)), None, where=where)[1]


class TableSource(Source):
    """A CSV or Parquet table: tabular rows, or text with `text_column`."""

    chunk_rows = TABLE_CHUNK_ROWS

    def __init__(self, path: Path, **kwargs):
        super().__init__(path, **kwargs)
        if self.target is None:
            raise AuditInputError(f"{shown(path)}: --target COL is needed to read labels from a table")
        self.modality = "text" if self.text_column else "tabular"
        self.parquet = "".join(path.suffixes[-2:]).lower().endswith((".parquet", ".pq"))

    def frames(self, columns: list[str] | None, rows: int) -> Iterator[pd.DataFrame]:
        """The table `rows` rows at a time, as DataFrames (only `columns`, when given)."""
        where = shown(self.path)
        try:
            if self.parquet:
                import pyarrow.parquet as pq

                table = pq.ParquetFile(self.path)
                names = table.schema_arrow.names
                for column in columns or ():
                    if column not in names:
                        raise AuditInputError(f"{where}: column {column!r} not found; columns are: {', '.join(names)}")
                for batch in table.iter_batches(batch_size=rows, columns=columns):
                    yield batch.to_pandas()
            else:
                with open(self.path, "rb") as raw:
                    reader = pd.read_csv(_LineBounded(raw, where), skipinitialspace=True, chunksize=rows,
                                         usecols=(lambda c: c in columns) if columns else None)
                    with reader:
                        yield from reader
        except AuditInputError:
            raise
        except pd.errors.EmptyDataError:
            raise AuditInputError(f"{where}: no rows (the file is empty)") from None
        except (pd.errors.ParserError, UnicodeDecodeError, OSError, ValueError, OverflowError) as exc:
            raise AuditInputError(f"{where}: cannot read as a table ({_first_line(exc)})") from None

    def census(self, classes=None, rows=None) -> Census:
        where = shown(self.path)
        wanted = list(dict.fromkeys([self.target, *self.sensitive]))
        seen, values, labels = 0, SensitiveValues(), []
        for frame in self.frames(wanted, rows or self.chunk_rows):
            missing = [c for c in wanted if c not in frame.columns]
            if missing:
                raise AuditInputError(f"{where}: column {missing[0]!r} not found; columns are: "
                                      f"{', '.join(map(str, frame.columns))}")
            seen += len(frame)
            values.add(frame[self.sensitive])
            if classes is None:
                labels.append(pd.Series(pd.unique(frame[self.target])))
                labels = [pd.Series(pd.unique(pd.concat(labels)))]
        if seen == 0:
            raise AuditInputError(f"{where}: no rows (the table is empty)")
        if classes is None:
            classes = _classes_of(labels[0], f"{where}: target column {self.target!r}")
        return Census(seen, tuple(classes), values)

    def chunks(self, classes, rows=None):
        start = 0
        for frame in self.frames(None, rows or self.chunk_rows):
            try:
                yield Dataset.from_dataframe(frame, target=self.target, sensitive=self.sensitive,
                                             text_column=self.text_column, classes=classes, name=self.name,
                                             source=self.describe)
            except AuditInputError as exc:  # its row numbers count from the chunk's first row
                raise AuditInputError(f"{exc} [rows counted from row {start:,} of the file]") from None
            start += len(frame)


class _LineBounded(io.RawIOBase):
    """A binary file that refuses, with one clear line, a line longer than MAX_LINE_BYTES: pandas' CSV
    reader holds a whole line in memory, and a file without line breaks is one line."""

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


class _NpyRows:
    """The rows of one array of an NPZ, read in order from its member of the archive."""

    def __init__(self, archive: zipfile.ZipFile, member: zipfile.ZipInfo, where: str):
        self.file = archive.open(member)
        _check_npy_header(self.file, member, where)
        self.file.seek(0)
        version = np.lib.format.read_magic(self.file)
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        self.shape, fortran, self.dtype = read(self.file)
        if fortran and len(self.shape) > 1:
            raise AuditInputError(f"{where}: array {member.filename!r} is stored in Fortran order; save it "
                                  "C-ordered (np.ascontiguousarray) to stream it")
        self.row_bytes = math.prod(self.shape[1:]) * self.dtype.itemsize

    def read(self, rows: int) -> np.ndarray:
        data = self.file.read(rows * self.row_bytes)
        return np.frombuffer(data, dtype=self.dtype).reshape(-1, *self.shape[1:])


class NpzSource(Source):
    """An NPZ of images: arrays x (N, C, H, W) or (N, H, W), y (N,), optional classes, sensitive arrays."""

    modality = "image"
    chunk_rows = IMAGE_CHUNK_ROWS

    def _open(self):
        where = shown(self.path)
        try:
            archive = zipfile.ZipFile(self.path)
        except (OSError, zipfile.BadZipFile) as exc:
            raise AuditInputError(f"{where}: cannot read as NPZ ({_first_line(exc)})") from None
        members = {m.filename.removesuffix(".npy"): m for m in archive.infolist()}
        for key in ("x", "y"):
            if key not in members:
                raise AuditInputError(f"{where}: array {key!r} missing; found {', '.join(members) or 'none'}")
        names = self.sensitive or [k for k in members if k not in ("x", "y", "classes")]
        for key in names:
            if key not in members:
                raise AuditInputError(f"{where}: sensitive array {key!r} missing; found {', '.join(members)}")
        return archive, members, names

    def _arrays(self, keys: Sequence[str], rows: int) -> Iterator[dict[str, np.ndarray]]:
        where = shown(self.path)
        archive, members, _ = self._open()
        try:
            with archive:
                readers = {k: _NpyRows(archive, members[k], where) for k in keys}
                n = readers["y"].shape[0] if readers["y"].shape else 0
                for key, reader in readers.items():
                    if not reader.shape or reader.shape[0] != n:
                        raise AuditInputError(f"{where}: array {key!r} has shape {reader.shape}, expected {n} rows "
                                              "like y")
                for _ in range(0, n, rows):
                    yield {k: r.read(rows) for k, r in readers.items()}
        except AuditInputError:
            raise
        except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error, NotImplementedError) as exc:
            raise AuditInputError(f"{where}: cannot read as NPZ ({_first_line(exc)})") from None

    def _names(self, classes) -> tuple[tuple[str, ...] | None, list[str]]:
        archive, members, names = self._open()
        with archive:
            if "classes" in members:
                try:
                    carried = np.load(io.BytesIO(archive.read(members["classes"])), allow_pickle=False)
                except (ValueError, OSError, EOFError, zlib.error) as exc:
                    raise AuditInputError(f"{shown(self.path)}: cannot read as NPZ ({_first_line(exc)})") from None
                return _npz_classes({"classes": carried, "y": np.zeros(0, dtype=np.int64)}, shown(self.path)), names
        return (tuple(classes) if classes is not None else None), names

    def census(self, classes=None, rows=None) -> Census:
        carried, names = self._names(classes)
        seen, values, labels = 0, SensitiveValues(), set()
        for arrays in self._arrays(["y", *names], rows or TABLE_CHUNK_ROWS):
            seen += len(arrays["y"])
            values.add(pd.DataFrame({k: arrays[k] for k in names}))
            if carried is None:
                labels.update(np.unique(arrays["y"]).tolist())
        if seen == 0:
            raise AuditInputError(f"{shown(self.path)}: no rows (the arrays are empty)")
        found = carried or _classes_of(pd.Series(sorted(labels)), f"{shown(self.path)}: labels y")
        return Census(seen, found, values)

    def chunks(self, classes, rows=None):
        carried, names = self._names(classes)
        for arrays in self._arrays(["x", "y", *names], rows or self.chunk_rows):
            y = arrays["y"]
            if carried is not None and y.dtype.kind not in "iu":
                raise AuditInputError(f"{shown(self.path)}: with an array 'classes', y must hold integer indices "
                                      f"into it, found {y.dtype}")
            yield Dataset.from_arrays(arrays["x"], y, sensitive={k: arrays[k] for k in names},
                                      classes=carried or classes, modality="image", name=self.name,
                                      source=self.describe)


class ImageFolder(Source):
    """Images in `root/class_name/file.png`: the label of an image is the name of its folder; its sensitive
    attributes, the columns of its row in `root/metadata.csv` (or `.parquet`)."""

    modality = "image"
    chunk_rows = IMAGE_CHUNK_ROWS

    def __init__(self, path: Path, **kwargs):
        super().__init__(path, **kwargs)
        where = shown(path)
        folders = sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))
        self.files = [(f, folder.name) for folder in folders for f in sorted(folder.iterdir())
                      if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file()]
        found = sorted({label for _, label in self.files})
        if not self.files:
            raise AuditInputError(f"{where}: no images found; expected the layout {where}/CLASS_NAME/FILE.png")
        if len(found) < 2:
            raise AuditInputError(f"{where}: images of one class only ({found[0]!r}); a classifier is audited on at "
                                  f"least two class folders, e.g. {where}/cat/*.png and {where}/dog/*.png")
        self.metadata = [path / name for name in METADATA_FILES if (path / name).is_file()]
        if len(self.metadata) > 1:
            raise AuditInputError(f"{where}: both metadata.csv and metadata.parquet found; keep one")
        if self.sensitive and not self.metadata:
            raise AuditInputError(f"{where}: no metadata.csv, so the images carry no sensitive attributes, but "
                                  f"{', '.join(map(repr, self.sensitive))} were asked for (--sensitive, or the "
                                  f"model's training data); put them in {where}/metadata.csv, one row per image "
                                  "named by a file_name column (e.g. cat/001.png)")
        self.attributes = self._attributes() if self.metadata else pd.DataFrame(index=range(len(self.files)))
        self.found = tuple(found)
        self.first = self._read(self.files[0][0], None)

    def _attributes(self) -> pd.DataFrame:
        """The sensitive columns of the metadata table, one row per image in the order of `files`."""
        table, where = read_table(self.metadata[0]), shown(self.metadata[0])
        if "file_name" not in table.columns:
            raise AuditInputError(f"{where}: column 'file_name' not found (the path of each image from the folder, "
                                  f"e.g. cat/001.png); columns are: {', '.join(map(str, table.columns))}")
        for column in self.sensitive:
            if column not in table.columns:
                raise AuditInputError(f"{where}: sensitive column {column!r} not found; columns are: "
                                      f"{', '.join(map(str, table.columns))}")
        names = pd.Series([str(PurePosixPath(str(n).replace("\\", "/"))) for n in table["file_name"]])
        repeated = names[names.duplicated()]
        if len(repeated):
            raise AuditInputError(f"{where}: file_name {repeated.iloc[0]!r} is in more than one row; one row per image")
        row = pd.Series(np.arange(len(names)), index=names)
        images = pd.Index([f"{label}/{file.name}" for file, label in self.files])
        _name_some(images.difference(row.index, sort=False), f"{where}: no row for {{n}} image(s) of the folder")
        _name_some(row.index.difference(images, sort=False),
                   f"{where}: {{n}} row(s) for images not in the folder's class folders")
        return table.iloc[row[images].to_numpy()][self.sensitive].reset_index(drop=True)

    def _read(self, file: Path, like: np.ndarray | None) -> np.ndarray:
        """One image as (C, H, W) float32 in [0, 1], in the mode of the first image."""
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(file) as image:
                image.load()
                mode = ("L" if image.mode in ("1", "L", "LA", "I", "I;16", "F") else "RGB") if like is None else (
                    "L" if like.shape[0] == 1 else "RGB")
                pixels = np.asarray(image.convert(mode), dtype=np.float32) / 255.0
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
            raise AuditInputError(f"{shown(file)}: cannot read as an image ({_first_line(exc)})") from None
        pixels = pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)
        if like is not None and pixels.shape[1:] != like.shape[1:]:
            raise AuditInputError(
                f"{shown(file)}: image of {pixels.shape[2]}x{pixels.shape[1]} pixels, but "
                f"{shown(self.files[0][0])} is {like.shape[2]}x{like.shape[1]}; the images of a folder must share one "
                "size (resize them first)")
        return pixels

    def census(self, classes=None, rows=None) -> Census:
        return Census(len(self.files), tuple(classes) if classes is not None else self.found,
                      SensitiveValues.of(self.attributes))

    def chunks(self, classes, rows=None):
        rows = rows or self.chunk_rows
        for start in range(0, len(self.files), rows):
            part = self.files[start:start + rows]
            x = np.stack([self._read(f, self.first) for f, _ in part])
            yield Dataset.from_arrays(x, np.array([label for _, label in part]), classes=self.found,
                                      sensitive=self.attributes.iloc[start:start + rows], modality="image",
                                      name=self.name, source=self.describe)

    def sha256(self) -> str:
        """Hash of the metadata file's bytes, then of every image's path in the folder and its bytes, in order."""
        digest = hashlib.sha256()
        for file in self.metadata:
            digest.update(file.read_bytes())
        for file, label in self.files:
            digest.update(f"{label}/{file.name}\x00".encode("utf-8", "surrogateescape"))
            digest.update(file.read_bytes())
        return digest.hexdigest()


def _name_some(names: pd.Index, problem: str) -> None:
    """One line: `problem` (with `{n}`, how many) and the first few of `names`, when there are any."""
    if len(names):
        more = f" and {len(names) - NAMED:,} more" if len(names) > NAMED else ""
        raise AuditInputError(f"{problem.replace('{n}', f'{len(names):,}')}: {', '.join(names[:NAMED])}{more}")


def open_source(path: str | Path, *, target: str | None = None, sensitive: Sequence[str] = (),
                text_column: str | None = None) -> Source:
    """The streamed source of `path`: a Parquet or CSV table, an NPZ, or a folder of images in class folders.
    No size limit: nothing is read whole."""
    path = Path(path)
    options = {"target": target, "sensitive": sensitive, "text_column": text_column}
    if path.is_dir():
        return ImageFolder(path, **options)
    path = input_file(path, whole=False)
    if path.suffix.lower() == ".npz":
        return NpzSource(path, **options)
    return TableSource(path, **options)


def data_bytes(path: str | Path) -> int:
    """The size of a data file, or of the files of a folder of images (0 when there is nothing to read)."""
    path = Path(path)
    try:
        if path.is_dir():
            return sum(f.stat().st_size for f in path.glob("*/*") if f.suffix.lower() in IMAGE_SUFFIXES)
        info = path.stat()
    except OSError:
        return 0
    return info.st_size if stat.S_ISREG(info.st_mode) else 0
