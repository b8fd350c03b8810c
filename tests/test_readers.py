"""One reader per format (io/tables.py, io/npz.py, io/images.py): the whole read and the chunked read of a file
give the same `Dataset`, and refuse bad data with the same line."""

from __future__ import annotations

import ast
import bz2
import gzip
import lzma
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import audit
import hostile
from audit.core.dataset import concat
from audit.io.sources import open_source, read_data
from audit.io.tables import read_table

ROOT = Path(audit.__file__).parent


def people(n: int = 300, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"income": rng.normal(50, 10, n).round(2), "years": rng.integers(0, 30, n),
                         "sex": rng.choice(["Female", "Male"], n), "city": rng.choice([" north", "south"], n),
                         "review": rng.choice(["good film", "dull"], n), "label": rng.choice(["no", "yes"], n)})


def write_images(root: Path, per_class: int = 7) -> None:
    """Class folders cat and dog of 6x6 grey images, and a metadata.csv (rows shuffled) naming each one's site."""
    rows = []
    for label in ("cat", "dog"):
        (root / label).mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(np.full((6, 6), 10 * i + (label == "dog") * 100, dtype=np.uint8), "L").save(
                root / label / f"{i:03d}.png")
            rows.append({"file_name": f"{label}/{i:03d}.png", "site": f"s{i % 3}"})
    pd.DataFrame(rows).sample(frac=1, random_state=0).to_csv(root / "metadata.csv", index=False)


def write(kind: str, folder: Path) -> tuple[Path, dict]:
    """A data file of `kind` and the options to read it."""
    table = {"target": "label", "sensitive": ["sex"]}
    if kind in ("csv", "csv.gz", "parquet", "text"):
        frame, path = people(), folder / f"d.{'csv' if kind == 'text' else kind}"
        if kind == "parquet":
            frame.to_parquet(path, row_group_size=70)
        elif kind == "csv.gz":
            with gzip.open(path, "wt") as f:
                frame.to_csv(f, index=False)
        else:
            frame.to_csv(path, index=False)
        return path, {**table, "text_column": "review"} if kind == "text" else table
    if kind == "images":
        write_images(folder / "imgs")
        return folder / "imgs", {"sensitive": ["site"]}
    arrays = hostile.images(n=53)
    if kind == "npz with classes":
        arrays["classes"] = np.array(["cat", "dog", "fox"])
    if kind == "npz of float labels":
        arrays["y"] = arrays["y"].astype(np.float64)
    (np.savez_compressed if kind == "compressed npz" else np.savez)(folder / "d.npz", **arrays)
    return folder / "d.npz", {}


KINDS = ["csv", "csv.gz", "parquet", "text", "npz", "compressed npz", "npz with classes", "npz of float labels",
         "images"]


def assert_same(a: audit.Dataset, b: audit.Dataset) -> None:
    assert (a.classes, a.modality, a.name, a.source) == (b.classes, b.modality, b.name, b.source)
    np.testing.assert_array_equal(a.labels, b.labels)
    pd.testing.assert_frame_equal(a.sensitive, b.sensitive)
    if isinstance(a.inputs, pd.DataFrame):
        pd.testing.assert_frame_equal(a.inputs, b.inputs)
    else:
        np.testing.assert_array_equal(a.inputs, b.inputs)
    assert a.sha256 == b.sha256


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("rows", [5, 97, 999])
def test_chunked_read_equals_whole_read(tmp_path, kind, rows):
    path, options = write(kind, tmp_path)
    whole = read_data(path, **options)
    source = open_source(path, **options)
    census = source.census(rows=rows)
    chunks = list(source.chunks(census.classes, rows))
    assert [len(c) for c in chunks[:-1]] == [rows] * (len(chunks) - 1) and 0 < len(chunks[-1]) <= rows
    assert census.rows == len(whole) and census.classes == whole.classes
    assert_same(concat(chunks), whole)
    assert_same(source.read(), whole)


def test_the_whole_read_parses_as_pandas_does(tmp_path):
    frame = people()
    frame.to_csv(tmp_path / "d.csv", index=False)
    frame.to_parquet(tmp_path / "d.parquet")
    pd.testing.assert_frame_equal(read_table(tmp_path / "d.csv"),
                                  pd.read_csv(tmp_path / "d.csv", skipinitialspace=True))
    pd.testing.assert_frame_equal(read_table(tmp_path / "d.parquet"), pd.read_parquet(tmp_path / "d.parquet"))


@pytest.mark.parametrize("suffix, compress", [
    (".gz", gzip.compress), (".bz2", bz2.compress), (".xz", lzma.compress), (".zip", None)])
def test_a_compressed_csv_reads_as_the_plain_one(tmp_path, suffix, compress):
    people().to_csv(tmp_path / "d.csv", index=False)
    packed = tmp_path / f"d.csv{suffix}"
    if compress is None:
        with zipfile.ZipFile(packed, "w") as archive:
            archive.write(tmp_path / "d.csv", "d.csv")
    else:
        packed.write_bytes(compress((tmp_path / "d.csv").read_bytes()))
    plain = read_data(tmp_path / "d.csv", target="label", sensitive=["sex"])
    assert read_data(packed, target="label", sensitive=["sex"]).sha256 == plain.sha256
    source = open_source(packed, target="label", sensitive=["sex"])
    assert concat(list(source.chunks(plain.classes, 64))).sha256 == plain.sha256


def test_a_zip_of_two_tables_is_refused(tmp_path):
    with zipfile.ZipFile(tmp_path / "d.csv.zip", "w") as archive:
        for name in ("a.csv", "b.csv"):
            archive.writestr(name, "x,label\n1,a\n2,b\n")
    with pytest.raises(audit.AuditInputError, match=r"d\.csv\.zip: cannot read as a table \(a zip of 2 files; "):
        read_data(tmp_path / "d.csv.zip", target="label")


def test_image_metadata_follows_each_image_in_both_reads(tmp_path):
    path, options = write("images", tmp_path)
    data = read_data(path, **options)
    brightness = np.round(data.inputs[:, 0, 0, 0] * 255).astype(int)  # 10 * i (+ 100 for dogs)
    assert data.classes == ("cat", "dog")
    assert data.sensitive["site"].tolist() == [f"s{(b % 100) // 10 % 3}" for b in brightness]
    source = open_source(path, **options)
    assert_same(concat(list(source.chunks(data.classes, 4))), data)


def bad_npz(kind: str, folder: Path) -> Path:
    arrays = hostile.images(n=40)
    if kind == "rows":
        arrays["x"] = arrays["x"][:39]
    elif kind == "shape":
        arrays["x"] = arrays["x"].reshape(40, -1)
    elif kind == "sensitive":
        arrays["site"] = arrays["site"][:3]
    elif kind == "labels":
        arrays["y"] = arrays["y"].astype(float)
        arrays["y"][33] = np.nan
    np.savez(folder / "d.npz", **arrays)
    return folder / "d.npz"


@pytest.mark.parametrize("kind, message", [
    ("rows", r"d\.npz: x has 39 rows but y has 40$"),
    ("shape", r"d\.npz: images x must have shape \(N, H, W\) or \(N, C, H, W\), found \(40, 64\)$"),
    ("sensitive", r"d\.npz: sensitive array 'site' has shape \(3,\), expected \(40,\) like y$"),
    ("labels", r"d\.npz: labels y has 1 missing value\(s\) \(rows 33\)"),
])
def test_bad_npz_is_refused_in_the_same_words_whole_or_chunked(tmp_path, kind, message):
    path = bad_npz(kind, tmp_path)
    with pytest.raises(audit.AuditInputError, match=message):
        read_data(path)
    source = open_source(path)
    with pytest.raises(audit.AuditInputError, match=message):
        census = source.census(rows=10)
        list(source.chunks(census.classes, 10))


def test_a_good_npz_is_not_refused(tmp_path):
    path = bad_npz("none", tmp_path)
    assert len(read_data(path)) == 40
    source = open_source(path)
    assert sum(len(c) for c in source.chunks(source.census(rows=10).classes, 10)) == 40


def test_a_missing_label_is_named_by_its_row_of_the_file(tmp_path):
    frame = people()
    frame.loc[250, "label"] = None
    frame.to_csv(tmp_path / "d.csv", index=False)
    expected = r"d\.csv: target column 'label' has 1 missing value\(s\) \(rows 250\)"
    with pytest.raises(audit.AuditInputError, match=expected):
        read_data(tmp_path / "d.csv", target="label")
    with pytest.raises(audit.AuditInputError, match=expected):
        open_source(tmp_path / "d.csv", target="label").census(rows=100)


def test_a_fortran_ordered_npz_is_read_whole_and_refused_in_chunks(tmp_path):
    arrays = hostile.images(n=20)
    np.savez(tmp_path / "c.npz", **arrays)
    np.savez(tmp_path / "f.npz", **{**arrays, "x": np.asfortranarray(arrays["x"])})
    np.testing.assert_array_equal(read_data(tmp_path / "f.npz").inputs, read_data(tmp_path / "c.npz").inputs)
    source = open_source(tmp_path / "f.npz")
    with pytest.raises(audit.AuditInputError, match=r"f\.npz: array 'x\.npy' is stored in Fortran order; save it "
                                                     r"C-ordered \(np\.ascontiguousarray\) to stream it"):
        list(source.chunks(source.census().classes, 8))
    assert len(concat(list(open_source(tmp_path / "c.npz").chunks(("0", "1", "2"), 8)))) == 20


def test_core_imports_nothing_from_io():
    """core/ is below io/: reading the Dataset type loads no reader."""
    code = "import sys, audit.core.dataset; print(sorted(m for m in sys.modules if m.startswith('audit.io')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("module", sorted(p.relative_to(ROOT).as_posix() for p in
                                          [*ROOT.glob("io/*.py"), ROOT / "core" / "dataset.py"]))
def test_no_private_name_is_imported_from_another_module(module):
    tree = ast.parse((ROOT / module).read_text())
    private = [(node.module, alias.name) for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
               for alias in node.names if alias.name.startswith("_") and alias.name != "__future__"]
    assert private == []
