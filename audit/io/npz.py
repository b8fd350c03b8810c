"""NPZ of images: arrays x (N, C, H, W) or (N, H, W), y (N,), an optional `classes` array of class names (y then
holds indices into it), and sensitive arrays (N,): those named sensitive, or without names every other array. The
other arrays of shape (N,) beside named sensitive ones are descriptive attributes. One reader, in chunks or whole:
each array is read row by row from its member of the archive (compressed or not), after every member's header is
checked against its size (a header may declare any shape, and numpy allocates the declared array before reading
it).
"""

from __future__ import annotations

import io
import math
import zipfile
import zlib
from collections.abc import Iterator, Sequence

import numpy as np
import pandas as pd

from audit.core.dataset import Dataset, found_classes, require_complete
from audit.core.groups import SensitiveValues
from audit._util.errors import AuditInputError
from audit._util.paths import shown
from audit.io.reader import IMAGE_CHUNK_ROWS, TABLE_CHUNK_ROWS, Census, Source, counted_from, first_line

MAX_NPZ_BYTES = 4 << 30  # arrays of an NPZ read whole, uncompressed
UNREADABLE = (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error, NotImplementedError, RuntimeError)


def check_npy_header(f, member: zipfile.ZipInfo, where: str) -> tuple[tuple[int, ...], bool, np.dtype]:
    """The shape, Fortran order and dtype a member declares, refused when they do not match its size or when it
    holds Python objects."""
    version = np.lib.format.read_magic(f)
    read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    shape, fortran, dtype = read_header(f)
    if dtype.hasobject:
        raise AuditInputError(f"{where}: array {member.filename!r} holds Python objects; NPZ data must be numbers")
    declared = math.prod(shape) * dtype.itemsize
    held = member.file_size - f.tell()
    if declared != held:
        raise AuditInputError(f"{where}: array {member.filename!r} declares shape {shape} of {dtype} "
                              f"({declared:,} bytes) but holds {held:,} bytes")
    return shape, fortran, dtype


class _NpyRows:
    """The rows of one array of an NPZ, read in order from its member of the archive."""

    def __init__(self, archive: zipfile.ZipFile, member: zipfile.ZipInfo, where: str):
        self.file = archive.open(member)
        self.shape, self.fortran, self.dtype = check_npy_header(self.file, member, where)
        self.member, self.where = member, where
        self.row_bytes = math.prod(self.shape[1:]) * self.dtype.itemsize

    def read(self, rows: int) -> np.ndarray:
        """The next `rows` rows; a Fortran-ordered array, whose rows are not in order, only whole."""
        if self.fortran and len(self.shape) > 1:
            if rows < self.shape[0]:
                raise AuditInputError(f"{self.where}: array {self.member.filename!r} is stored in Fortran order; "
                                      "save it C-ordered (np.ascontiguousarray) to stream it")
            return np.frombuffer(self.file.read(), dtype=self.dtype).reshape(self.shape, order="F")
        data = self.file.read(rows * self.row_bytes)
        return np.frombuffer(data, dtype=self.dtype).reshape(-1, *self.shape[1:])


def memory_bytes(path) -> int:
    """The bytes the NPZ's arrays take read whole, from their headers (images x as float32, as a Dataset holds
    them); the file's size where the headers cannot be read (the reader then says why)."""
    try:
        with zipfile.ZipFile(path) as archive:
            total = 0
            for member in archive.infolist():
                with archive.open(member) as f:
                    shape, _, dtype = check_npy_header(f, member, shown(path))
                itemsize = max(dtype.itemsize, 4) if member.filename.removesuffix(".npy") == "x" else dtype.itemsize
                total += math.prod(shape) * itemsize
            return total
    except (AuditInputError, *UNREADABLE):
        return path.stat().st_size


class NpzSource(Source):
    """An NPZ of images, in chunks or whole."""

    modality = "image"
    chunk_rows = IMAGE_CHUNK_ROWS

    def _open(self) -> tuple[zipfile.ZipFile, dict[str, zipfile.ZipInfo], list[str], list[str]]:
        """The archive, its members by array name (every header checked), the names of the sensitive arrays and
        those of the descriptive ones (the others of y's shape)."""
        where = shown(self.path)
        try:
            archive = zipfile.ZipFile(self.path)
        except (OSError, zipfile.BadZipFile) as exc:
            raise AuditInputError(f"{where}: cannot read as NPZ ({first_line(exc)})") from None
        shapes = {}
        try:
            for member in archive.infolist():
                with archive.open(member) as f:
                    shapes[member.filename.removesuffix(".npy")] = check_npy_header(f, member, where)[0]
        except AuditInputError:
            archive.close()
            raise
        except UNREADABLE as exc:
            archive.close()
            raise AuditInputError(f"{where}: cannot read as NPZ ({first_line(exc)})") from None
        members = {m.filename.removesuffix(".npy"): m for m in archive.infolist()}
        names = self.sensitive or [k for k in members if k not in ("x", "y", "classes")]
        for key, what in (("x", "array"), ("y", "array"), *((k, "sensitive array") for k in names)):
            if key not in members:
                archive.close()
                raise AuditInputError(f"{where}: {what} {key!r} missing; found {', '.join(members) or 'none'}")
        described = [k for k in members if k not in ("x", "y", "classes", *names) and shapes[k] == shapes["y"]]
        return archive, members, names, described

    def _arrays(self, keys: Sequence[str], rows: int | None) -> Iterator[dict[str, np.ndarray]]:
        """The arrays `keys` (y among them), `rows` rows at a time (all at once when None), after the shapes of
        x, y and the sensitive arrays are checked against each other."""
        where = shown(self.path)
        archive, members, names, _ = self._open()
        try:
            with archive:
                readers = {k: _NpyRows(archive, members[k], where) for k in dict.fromkeys(["y", "x", *names, *keys])}
                y, x = readers["y"].shape, readers["x"].shape
                for key in names:
                    if readers[key].shape != y:
                        raise AuditInputError(f"{where}: sensitive array {key!r} has shape {readers[key].shape}, "
                                              f"expected {y} like y")
                if len(y) != 1:
                    raise AuditInputError(f"{where}: labels y must have shape (N,), found {y}")
                if len(x) not in (3, 4):  # the words of `Dataset.from_arrays`, said before any row is read
                    raise AuditInputError(f"{where}: images x must have shape (N, H, W) or (N, C, H, W), found {x}")
                if x[0] != y[0]:
                    raise AuditInputError(f"{where}: x has {x[0]} rows but y has {y[0]}")
                if y[0] == 0:
                    raise AuditInputError(f"{where}: no rows (the arrays are empty)")
                rows = rows or y[0]
                for _ in range(0, y[0], rows):
                    yield {k: readers[k].read(rows) for k in keys}
        except AuditInputError:
            raise
        except UNREADABLE as exc:
            raise AuditInputError(f"{where}: cannot read as NPZ ({first_line(exc)})") from None

    def _names(self) -> tuple[tuple[str, ...] | None, list[str], list[str]]:
        """The classes the NPZ carries (None when it has no `classes` array), the names of its sensitive arrays
        and those of its descriptive ones."""
        where = shown(self.path)
        archive, members, names, described = self._open()
        with archive:
            if "classes" not in members:
                return None, names, described
            try:
                carried = np.load(io.BytesIO(archive.read(members["classes"])), allow_pickle=False)
            except UNREADABLE as exc:
                raise AuditInputError(f"{where}: cannot read as NPZ ({first_line(exc)})") from None
        if carried.ndim != 1 or carried.dtype.kind not in "US":
            raise AuditInputError(f"{where}: array 'classes' must be a 1-d array of class names, "
                                  f"found shape {carried.shape} of {carried.dtype}")
        return tuple(str(n) for n in carried), names, described

    def census(self, classes=None, rows=None) -> Census:
        carried, names, _ = self._names()
        known = carried or (tuple(classes) if classes is not None else None)
        seen, values, labels = 0, SensitiveValues(), set()
        for arrays in self._arrays(["y", *names], rows or TABLE_CHUNK_ROWS):
            require_complete(pd.Series(arrays["y"]), f"{shown(self.path)}: labels y", first_row=seen)
            seen += len(arrays["y"])
            values.add(pd.DataFrame({k: arrays[k] for k in names}))
            if known is None:
                labels.update(np.unique(arrays["y"]).tolist())
        found = known or found_classes(pd.Series(list(labels)), where=f"{shown(self.path)}: labels y")
        return Census(seen, found, values)

    def parts(self, classes, rows):
        carried, names, described = self._names()
        start = 0
        for arrays in self._arrays(["y", "x", *names, *described], rows):
            y = arrays["y"]
            if carried is not None and y.dtype.kind not in "iu":
                raise AuditInputError(f"{shown(self.path)}: with an array 'classes', y must hold integer indices "
                                      f"into it, found {y.dtype}")
            try:
                yield Dataset.from_arrays(arrays["x"], y, sensitive={k: arrays[k] for k in names},
                                          attributes={k: arrays[k] for k in described}, classes=carried or classes,
                                          modality="image", name=self.name, source=self.describe)
            except AuditInputError as exc:
                if rows is None:
                    raise
                raise counted_from(exc, start) from None
            start += len(y)

    def read(self, classes=None) -> Dataset:
        archive, *_ = self._open()
        with archive:
            if sum(m.file_size for m in archive.infolist()) > MAX_NPZ_BYTES:
                raise AuditInputError(f"{shown(self.path)}: the arrays hold more than {MAX_NPZ_BYTES >> 30} GB "
                                      "uncompressed")
        return super().read(classes)
