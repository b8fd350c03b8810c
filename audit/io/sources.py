"""A user's data file, by format: a CSV or Parquet table (io/tables.py), an NPZ of images (io/npz.py) or a
folder of images in class folders (io/images.py). One reader per format (a `Source`), opened here to be read
in chunks (`open_source`, streaming) or whole (`read_data`).
"""

from __future__ import annotations

import stat
import warnings
from collections.abc import Sequence
from pathlib import Path

from audit.core.dataset import Dataset
from audit._util.paths import input_file
from audit.io.images import IMAGE_SUFFIXES, ImageFolder
from audit.io.npz import NpzSource
from audit.io.npz import memory_bytes as npz_bytes
from audit.io.reader import Source
from audit.io.tables import TableSource
from audit.io.tables import memory_bytes as table_bytes

from audit.io.limits import STREAM_ABOVE


def _source(path: str | Path, *, whole: bool, target: str | None, sensitive: Sequence[str],
            text_column: str | None) -> Source:
    path = Path(path)
    options = {"target": target, "sensitive": sensitive, "text_column": text_column}
    if path.is_dir():
        return ImageFolder(path, **options)
    path = input_file(path, whole=whole)
    if path.suffix.lower() == ".npz":
        return NpzSource(path, **options)
    return TableSource(path, **options)


def open_source(path: str | Path, *, target: str | None = None, sensitive: Sequence[str] = (),
                text_column: str | None = None) -> Source:
    """The streamed source of `path`: a Parquet or CSV table, an NPZ, or a folder of images in class folders.
    No size limit: nothing is read whole."""
    return _source(path, whole=False, target=target, sensitive=sensitive, text_column=text_column)


def read_data(
    path: str | Path,
    *,
    target: str | None = None,
    sensitive: Sequence[str] = (),
    text_column: str | None = None,
    classes: Sequence[str] | None = None,
) -> Dataset:
    """A user's data file read whole: CSV or Parquet (a table; text with `text_column`), NPZ (images) or a folder
    of images in class folders (`root/class_name/file.png`, sensitive columns in `root/metadata.csv` by
    `file_name`). `classes` (e.g. the model's) fix the label encoding where the data do not name their own."""
    source = _source(path, whole=True, target=target, sensitive=sensitive, text_column=text_column)
    return source.read(classes)


def data_bytes(path: str | Path) -> int:
    """About how many bytes the data take in memory read whole (0 when there is nothing to read): a table's rows
    times its columns, an NPZ's arrays by their headers, a folder's images by the first one's pixels. Compressed
    file bytes say little: a Parquet file of 15 MB can hold gigabytes of rows."""
    path = Path(path)
    try:
        if path.is_dir():
            return _images_bytes(path)
        info = path.stat()
    except OSError:
        return 0
    if not stat.S_ISREG(info.st_mode):
        return 0
    # never below the file's size: what streamed by its size before still does
    return max(npz_bytes(path) if path.suffix.lower() == ".npz" else table_bytes(path), info.st_size)


def _images_bytes(folder: Path) -> int:
    """The images of a folder as float32 pixels, all taken the size of the first one (the reader refuses other
    sizes); their file sizes where the first cannot be read."""
    from PIL import Image, UnidentifiedImageError

    files = [f for f in folder.glob("*/*") if f.suffix.lower() in IMAGE_SUFFIXES]
    if not files:
        return 0
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(min(files)) as image:  # the header only: nothing is decoded
                width, height = image.size
                channels = 1 if image.mode in ("1", "L", "LA", "I", "I;16", "F") else 3
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError, SyntaxError):
        return sum(f.stat().st_size for f in files)
    return len(files) * width * height * channels * 4
