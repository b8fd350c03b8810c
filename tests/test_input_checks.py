"""Bad input is one line and exit 2, never a number: non-finite data and model outputs, hostile NPZ
headers, duplicate columns, file names that are not UTF-8, paths that are not regular files."""

from __future__ import annotations

import json
import math
import os
import zipfile

import numpy as np
import pytest
import torch

import audit
import hostile
from audit.io import checkpoint
from audit.cli import main


@pytest.fixture
def files(tmp_path):
    """A tabular and an image checkpoint with matching data, in `tmp_path`."""
    table = hostile.table()
    table.to_csv(tmp_path / "t.csv", index=False)
    np.savez(tmp_path / "i.npz", **hostile.images())
    checkpoint.save(hostile.tabular_model(), tmp_path / "t.pt")
    checkpoint.save(hostile.image_model(), tmp_path / "i.pt")
    return tmp_path


def audit_cli(capsys, tmp_path, *args) -> tuple[int, str]:
    """Run `audit report ARGS`; return the exit code and stderr, after checking that a failure is one line
    and wrote nothing."""
    before = set(tmp_path.iterdir())
    code = main(["report", *map(str, args), "-o", str(tmp_path / "r.html"), "--json", str(tmp_path / "r.json"),
                 "--analyzers", "performance", "--quiet"])
    err = capsys.readouterr().err
    if code == 2:
        assert len(err.strip().splitlines()) == 1 and err.startswith("error: "), err
        assert set(tmp_path.iterdir()) == before
    return code, err


def test_valid_files_audit_cleanly(capsys, files):
    assert audit_cli(capsys, files, files / "t.pt", "--data", files / "t.csv", "--target", "approved")[0] == 0
    assert audit_cli(capsys, files, files / "i.pt", "--data", files / "i.npz")[0] == 0


@pytest.mark.parametrize("cell", ["1e308", "-1e40"])
def test_csv_value_that_overflows_float32_is_named(capsys, files, cell):
    frame = hostile.table()
    frame["income"] = frame["income"].astype(object)
    frame.loc[7, "income"] = cell
    frame.to_csv(files / "t.csv", index=False)
    code, err = audit_cli(capsys, files, files / "t.pt", "--data", files / "t.csv", "--target", "approved")
    assert code == 2
    assert "t.csv: column 'income' has 1 value(s) too large for the model's float32 inputs" in err
    assert "first at row 7" in err


def test_npz_image_value_that_overflows_float32_is_refused(capsys, files):
    arrays = hostile.images()
    arrays["x"] = arrays["x"].astype(np.float64)
    arrays["x"][4, 2, 2] = 1e308
    np.savez(files / "i.npz", **arrays)
    code, err = audit_cli(capsys, files, files / "i.pt", "--data", files / "i.npz")
    assert code == 2
    assert "i.npz: images x hold 1 NaN, infinite or float32-overflowing value(s) (first in image 4)" in err


def test_model_that_outputs_infinity_is_a_failed_model_not_a_score(capsys, files):
    obj = hostile.payload(hostile.tabular_model())
    obj["state_dict"]["0.weight"].fill_(1e38)  # finite weights, infinite outputs for most rows
    hostile.save_payload(obj, files / "t.pt")
    code, err = audit_cli(capsys, files, files / "t.pt", "--data", files / "t.csv", "--target", "approved")
    assert code == 2
    assert "the model outputs NaN or infinite values for" in err and "of 40 rows" in err


def test_all_nan_model_does_not_pass_gates():
    """Before: accuracy = base rate, ECE 0 and a passing gate."""
    model = hostile.tabular_model()
    model.module[-1].bias.data.fill_(math.nan)
    data = audit.Dataset.from_dataframe(hostile.table(), target="approved", sensitive=["group"])
    policy = audit.Policy.from_dict({"gates": {"performance.accuracy": {"min": 0.1}}})
    with pytest.raises(audit.AuditInputError, match=r"NaN or infinite values for 40 of 40 rows"):
        audit.run(model, data, ["performance"], policy=policy)


def test_some_nan_rows_are_counted():
    class HalfNaN(torch.nn.Module):
        def forward(self, x):
            out = torch.zeros(len(x), 2)
            out[::4] = math.nan
            return out

    model = audit.wrap(HalfNaN(), modality="tabular", classes=["no", "yes"], feature_names=["income", "years"])
    with pytest.raises(audit.AuditInputError, match=r"for 10 of 40 rows"):
        model.predict_proba(hostile.table()[["income", "years"]])


def test_truncated_npz_is_one_line(capsys, files):
    raw = (files / "i.npz").read_bytes()
    (files / "i.npz").write_bytes(raw[: len(raw) // 2])
    code, err = audit_cli(capsys, files, files / "i.pt", "--data", files / "i.npz")
    assert code == 2 and "i.npz: cannot read as NPZ" in err


def test_npz_header_declaring_30_gb_is_refused_before_allocating(capsys, files):
    (files / "i.npz").write_bytes(hostile.npz_with_header(hostile.images(), "x", (125_000, 256, 256)))
    with zipfile.ZipFile(files / "i.npz") as archive:
        assert b"(125000, 256, 256)" in archive.read("x.npy")[:128]
    code, err = audit_cli(capsys, files, files / "i.pt", "--data", files / "i.npz")
    assert code == 2
    assert "i.npz: array 'x.npy' declares shape (125000, 256, 256) of float32 (32,768,000,000 bytes) but holds" in err


def test_npz_member_that_is_not_an_array_is_refused(capsys, files):
    with zipfile.ZipFile(files / "i.npz", "a") as archive:
        archive.writestr("notes.npy", b"free text")
    code, err = audit_cli(capsys, files, files / "i.pt", "--data", files / "i.npz")
    assert code == 2 and "i.npz: cannot read as NPZ" in err


def test_sensitive_column_named_twice(capsys, files):
    code, err = audit_cli(capsys, files, files / "t.pt", "--data", files / "t.csv", "--target", "approved",
                          "--sensitive", "group", "group")
    assert code == 2 and "t.csv: --sensitive names 'group' more than once" in err


def test_duplicate_columns_in_a_dataframe():
    frame = hostile.table()
    frame.columns = ["income", "income", "city", "group", "approved"]
    with pytest.raises(audit.AuditInputError, match=r"has columns 'income' more than once"):
        audit.Dataset.from_dataframe(frame, target="approved")


def test_file_names_that_are_not_utf8_audit_cleanly(capsys, files, monkeypatch):
    model = files / os.fsdecode(b"m\xff.pt")
    data = files / os.fsdecode(b"d\xfe.csv")
    os.replace(files / "t.pt", model)
    os.replace(files / "t.csv", data)
    monkeypatch.setattr("sys.argv", ["audit", "report", str(model)])
    code, err = audit_cli(capsys, files, model, "--data", data, "--target", "approved")
    assert code == 0, err
    doc = json.loads((files / "r.json").read_text())
    assert doc["model"]["path"].endswith("m\ufffd.pt") and doc["data"]["name"] == "d\ufffd"


@pytest.mark.parametrize("kind", ["directory", "fifo"])
def test_data_path_that_is_not_a_file_is_named(capsys, files, kind):
    path = files / "dir.csv"
    if kind == "fifo":
        os.mkfifo(path)
    else:
        path.mkdir()
    code, err = audit_cli(capsys, files, files / "t.pt", "--data", path, "--target", "approved")
    assert code == 2
    # a directory is read as a folder of images in class folders
    assert {"directory": "dir.csv: no images found", "fifo": "dir.csv: is a named pipe (FIFO)"}[kind] in err


def test_model_path_that_is_a_fifo_does_not_block(capsys, files):
    os.mkfifo(files / "pipe.pt")
    code, err = audit_cli(capsys, files, files / "pipe.pt")
    assert code == 2 and "pipe.pt: is a named pipe (FIFO), not a regular file" in err


def test_csv_number_too_large_for_a_float_is_named(capsys, files):
    """Found by benchmarks/fuzz.py: pandas keeps a 400-digit number as text, and to_numeric overflows."""
    frame = hostile.table()
    frame["years"] = frame["years"].astype(object)
    frame.loc[2, "years"] = "9" * 400
    frame.to_csv(files / "t.csv", index=False)
    code, err = audit_cli(capsys, files, files / "t.pt", "--data", files / "t.csv", "--target", "approved")
    assert code == 2 and "t.csv: column 'years' holds a number too large for a float" in err
