"""Folders of images in the `class_name/file.png` layout, read in chunks or whole by one reader.

Classes are the sub-folder names; each image is read with Pillow, pixels scaled to [0, 1], channels those of the
first image (grey or RGB). Per-image attributes come from a `metadata.csv` or `metadata.parquet` at the
folder's root, one row per image named by its `file_name` (`cat/001.png`), as in Hugging Face's `imagefolder`:
read once (one small row per image), and joined to the images as they are read. The columns named sensitive
are the sensitive attributes; every other column (a site, a camera, a date) is a descriptive attribute.

An image's size is read from its header and checked before its pixels are decoded: a small file can declare
billions of pixels (a decompression bomb). Pillow's own bomb guard, set to the same limit, is the second line.
"""

from __future__ import annotations

import hashlib
import warnings
from contextlib import contextmanager
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd

from audit.core.dataset import Dataset
from audit.core.groups import SensitiveValues
from audit._util.errors import AuditInputError
from audit._util.paths import shown
from audit.io.reader import IMAGE_CHUNK_ROWS, Census, Source, first_line
from audit.io.tables import read_table

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
METADATA_FILES = ("metadata.csv", "metadata.parquet")
NAMED = 3  # images or rows named in a message about the metadata
IMAGE_FORMATS = ("PNG", "JPEG", "BMP", "GIF", "TIFF", "WEBP")  # Pillow decodes only these, whatever the suffix
GREY_MODES = ("1", "L", "LA", "I", "I;16", "F")
MAX_IMAGE_BYTES = 256 << 20  # one image as float32 pixels (width x height x channels x 4 bytes)
MAX_IMAGE_PIXELS = MAX_IMAGE_BYTES // 4  # a greyscale image at the byte limit: 8192 x 8192


class ImageFolder(Source):
    """Images in `root/class_name/file.png`: the label of an image is the name of its folder; its sensitive and
    descriptive attributes, the columns of its row in `root/metadata.csv` (or `.parquet`)."""

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
        self.table = self._metadata_rows() if self.metadata else pd.DataFrame(index=range(len(self.files)))
        self.found = tuple(found)
        self.first = self._read(self.files[0][0], None)

    def _metadata_rows(self) -> pd.DataFrame:
        """The metadata table but its file_name, one row per image in the order of `files`."""
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
            raise AuditInputError(f"{where}: file_name {repeated.iloc[0]!r} is in more than one row; "
                                  "one row per image")
        row = pd.Series(np.arange(len(names)), index=names)
        images = pd.Index([f"{label}/{file.name}" for file, label in self.files])
        _name_some(images.difference(row.index, sort=False), f"{where}: no row for {{n}} image(s) of the folder")
        _name_some(row.index.difference(images, sort=False),
                   f"{where}: {{n}} row(s) for images not in the folder's class folders")
        return table.iloc[row[images].to_numpy()].drop(columns="file_name").reset_index(drop=True)

    def _read(self, file: Path, like: np.ndarray | None) -> np.ndarray:
        """One image as (C, H, W) float32 in [0, 1], in the mode of the first image."""
        from PIL import Image, UnidentifiedImageError

        try:
            with _bomb_guard(), Image.open(file, formats=IMAGE_FORMATS) as image:
                mode = ("L" if image.mode in GREY_MODES else "RGB") if like is None else (
                    "L" if like.shape[0] == 1 else "RGB")
                _check_size(file, image.size, max(len(image.getbands()), 1 if mode == "L" else 3))
                image.load()
                pixels = np.asarray(image.convert(mode), dtype=np.float32) / 255.0
        except AuditInputError:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise AuditInputError(f"{shown(file)}: refused before decoding, a possible decompression bomb "
                                  f"({first_line(exc)}); the limit is {MAX_IMAGE_PIXELS:,} pixels, "
                                  f"{MAX_IMAGE_BYTES >> 20} MiB per image; resize the images first") from None
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError, MemoryError) as exc:
            raise AuditInputError(f"{shown(file)}: cannot read as an image ({first_line(exc)})") from None
        pixels = pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)
        if like is not None and pixels.shape[1:] != like.shape[1:]:
            raise AuditInputError(
                f"{shown(file)}: image of {pixels.shape[2]}x{pixels.shape[1]} pixels, but "
                f"{shown(self.files[0][0])} is {like.shape[2]}x{like.shape[1]}; the images of a folder must share one "
                "size (resize them first)")
        return pixels

    def census(self, classes=None, rows=None) -> Census:
        return Census(len(self.files), tuple(classes) if classes is not None else self.found,
                      SensitiveValues.of(self.table[self.sensitive]))

    def parts(self, classes, rows):
        rows = rows or len(self.files)
        described = [c for c in self.table.columns if c not in self.sensitive]
        for start in range(0, len(self.files), rows):
            part = self.files[start:start + rows]
            x = np.stack([self._read(f, self.first) for f, _ in part])
            yield Dataset.from_arrays(x, np.array([label for _, label in part]), classes=self.found,
                                      sensitive=self.table[self.sensitive].iloc[start:start + rows],
                                      attributes=self.table[described].iloc[start:start + rows], modality="image",
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


def _check_size(file: Path, size: tuple[int, int], channels: int) -> None:
    """Refuse an image whose header declares more pixels, or more float32 bytes, than one image may take;
    `channels`, the more of the file's bands and those it is converted to."""
    width, height = size
    needed = width * height * channels * 4
    if width * height > MAX_IMAGE_PIXELS or needed > MAX_IMAGE_BYTES:
        raise AuditInputError(
            f"{shown(file)}: image of {width:,}x{height:,} pixels ({channels} channel(s)) would take "
            f"{needed / (1 << 20):,.0f} MiB as float32; the limit is {MAX_IMAGE_BYTES >> 20} MiB per image "
            f"({MAX_IMAGE_PIXELS:,} pixels); resize the images first")


@contextmanager
def _bomb_guard():
    """Pillow's decompression-bomb check at our limit, its warning raised as an error (never printed)."""
    from PIL import Image

    before = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            yield
    finally:
        Image.MAX_IMAGE_PIXELS = before
