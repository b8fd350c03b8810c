"""Files that are read whole are refused above a size limit before any byte is read: one line naming
the file, its size and the limit, exit 2. Sparse files stand in for large ones (nothing is written)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import audit
import hostile
from audit.io import checkpoint
from audit.cli import main
from audit._util.paths import MAX_INPUT_BYTES, input_size_limit, parse_size

TWO_GIB = 2 << 30


@pytest.fixture
def files(tmp_path):
    hostile.table().to_csv(tmp_path / "t.csv", index=False)
    checkpoint.save(hostile.tabular_model(), tmp_path / "t.pt")
    checkpoint.save(hostile.image_model(), tmp_path / "i.pt")
    return tmp_path


def sparse(path: Path, size: int) -> Path:
    with open(path, "wb") as f:
        f.truncate(size)
    assert os.stat(path).st_blocks * 512 < 1 << 20  # no real gigabytes on disk
    return path


def refuse(*args, **kwargs):
    raise AssertionError("a file over the limit was read")


@pytest.mark.parametrize("role, name, reader", [
    ("model", "big.pt", "pathlib.Path.read_bytes"),
    ("--policy", "big.toml", "pathlib.Path.read_text"),
])
def test_a_2_gib_input_is_refused_before_reading(capsys, monkeypatch, files, role, name, reader):
    big = sparse(files / name, TWO_GIB)
    model = files / ("i.pt" if name.endswith(".npz") else "t.pt")
    args = {"--data": [model, "--data", big, "--target", "approved"], "model": [big],
            "--policy": [model, "--policy", big]}[role]
    monkeypatch.setattr(reader, refuse)
    code = main(["report", *map(str, args), "-o", str(files / "r.html"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err == (f"error: {big}: 2,147,483,648 bytes (2.0 GiB) is over the 1.0 GiB limit for input files, "
                   "which are read whole (raise it with --max-input-size)\n")
    assert not (files / "r.html").exists()


def test_the_limit_can_be_raised(capsys, files):
    args = ["report", str(files / "t.pt"), "--data", str(files / "t.csv"), "--target", "approved",
            "-o", str(files / "r.html"), "--analyzers", "performance", "--quiet"]
    assert main([*args, "--max-input-size", "1K"]) == 2
    assert f"t.pt: {(files / 't.pt').stat().st_size:,} bytes" in capsys.readouterr().err
    assert main([*args, "--max-input-size", "1M"]) == 0
    assert (files / "r.html").exists()


def test_api_reads_within_a_limit(files):
    with input_size_limit(1024), pytest.raises(audit.AuditInputError, match=r"t\.pt: .* over the 1\.0 KiB limit"):
        audit.load_model(files / "t.pt")
    assert audit.load_model(files / "t.pt").architecture == "mlp"  # the default limit is back
    assert MAX_INPUT_BYTES == 1 << 30


@pytest.mark.parametrize("text, expected", [("1024", 1024), ("4G", 4 << 30), ("512m", 512 << 20), ("1.5GiB", 3 << 29),
                                            ("2 KB", 2048), ("3T", 3 << 40)])
def test_sizes_are_read_with_binary_units(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "G", "-1", "4X", "1e9"])
def test_a_bad_size_is_one_line(capsys, text):
    assert main(["report", "m.pt", "--max-input-size", text]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: audit report: argument --max-input-size: size ") and err.count("\n") == 1
