"""`audit report` streams data that would take more than STREAM_ABOVE bytes in memory, whatever their file
size: the estimate reads a Parquet file's metadata, a CSV's first block (decompressed), an NPZ's headers and
an image's header, never the data whole."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

import hostile
from audit.cli import main
from audit.io import checkpoint, locate
from audit.io.limits import STREAM_ABOVE
from audit.io.locate import streamed_source
from audit.io.sources import data_bytes

ADULT = pd.read_csv(__import__("pathlib").Path(__file__).parents[1] / "audit/io/files/adult.data.gz", header=None,
                    skipinitialspace=True, nrows=5000).set_axis([f"c{i}" for i in range(15)], axis=1)


def decision(path) -> bool:
    return streamed_source({}, data=path, stream=False, target="c14") is not None


def test_a_parquet_of_many_rows_in_few_bytes_is_streamed(tmp_path):
    """600,000 rows of five repeated values: some kilobytes on disk, about 100 MB in memory."""
    path = tmp_path / "many.parquet"
    group = pa.Table.from_pandas(ADULT.iloc[np.arange(100_000) % 5], preserve_index=False)
    with pq.ParquetWriter(path, group.schema) as writer:
        for _ in range(6):
            writer.write_table(group)
    assert path.stat().st_size < (1 << 20)
    assert data_bytes(path) > STREAM_ABOVE and decision(path)


def test_a_small_parquet_is_read_whole(tmp_path):
    path = tmp_path / "few.parquet"
    ADULT.to_parquet(path)
    assert not decision(path)


@pytest.mark.parametrize("name", ["t.csv", "t.csv.gz", "t.csv.bz2", "t.csv.xz", "t.csv.zip", "t.parquet"])
def test_the_estimate_is_near_the_size_in_memory(tmp_path, name):
    """Within half and four times the bytes pandas holds for the table read whole (Parquet's strings are
    counted at 64 bytes: pandas' Arrow strings take their length and an offset, Python strings about 60)."""
    frame = pd.concat([ADULT] * 8, ignore_index=True)  # 40,000 rows: past the CSV's first block
    path = tmp_path / name
    frame.to_parquet(path) if name.endswith(".parquet") else frame.to_csv(path, index=False)
    held = frame.memory_usage(deep=True, index=False).sum()
    assert 0.5 * held < data_bytes(path) < 4 * held


def test_a_compressed_csv_is_judged_by_its_text(tmp_path):
    """1,000,000 repeated lines: a few kilobytes gzipped, about 100 MB in memory."""
    path = tmp_path / "many.csv.gz"
    with gzip.open(path, "wt") as f:
        f.write("c0,c1,c14\n" + "39,State-gov,<=50K\n" * 1_000_000)
    assert path.stat().st_size < (1 << 20)
    assert decision(path)


def test_an_npz_is_judged_by_its_arrays(tmp_path):
    """3,000 images of 64x64 in uint8, compressed: tiny on disk, 48 MB as float32."""
    path = tmp_path / "x.npz"
    np.savez_compressed(path, x=np.zeros((3000, 1, 64, 64), np.uint8), y=np.arange(3000) % 2)
    assert path.stat().st_size < (1 << 20) and decision(path)
    np.savez_compressed(path, x=np.zeros((30, 1, 64, 64), np.uint8), y=np.arange(30) % 2)
    assert not decision(path)


def test_an_image_folder_is_judged_by_its_pixels(tmp_path):
    """Two black PNGs of 4,000 x 4,000: some kilobytes, 128 MB as float32."""
    for label in ("0", "1"):
        (tmp_path / label).mkdir()
        Image.new("L", (4000, 4000)).save(tmp_path / label / "a.png")
    assert data_bytes(tmp_path) == 2 * 4000 * 4000 * 4 and decision(tmp_path)


@pytest.mark.parametrize("content", [b"", b"x" * (2 << 20), b"PAR1 not parquet"])
def test_unreadable_files_fall_back_to_their_size(tmp_path, content):
    """The reader, not the estimate, says what is wrong with a file; an estimate is never below the file's
    size."""
    for name in ("t.csv", "t.parquet", "t.npz"):
        (tmp_path / name).write_bytes(content)
        assert data_bytes(tmp_path / name) == len(content)


def test_report_streams_what_would_not_fit(tmp_path, capsys, monkeypatch):
    """With the bound lowered to 256 KiB: 20,000 rows in a Parquet file of a few kilobytes are streamed, the
    same rows under the bound are not."""
    monkeypatch.setattr(locate, "STREAM_ABOVE", 256 << 10)
    checkpoint.save(hostile.tabular_model(), tmp_path / "m.pt")
    pd.concat([hostile.table(n=100)] * 200, ignore_index=True).to_parquet(tmp_path / "big.parquet")
    hostile.table(n=100).to_parquet(tmp_path / "small.parquet")
    assert (tmp_path / "big.parquet").stat().st_size < (256 << 10)
    streamed = {}
    for name in ("big", "small"):
        out = tmp_path / f"{name}.json"
        code = main(["report", str(tmp_path / "m.pt"), "--data", str(tmp_path / f"{name}.parquet"), "--target",
                     "approved", "--analyzers", "performance", "-o", str(tmp_path / "r.html"), "--json", str(out),
                     "--quiet"])
        assert code in (0, 1), capsys.readouterr().err
        streamed[name] = bool(json.loads(out.read_text())["data"]["source"].get("streamed"))
    assert streamed == {"big": True, "small": False}
