"""Property-based fuzzing of every input file (a bounded budget; benchmarks/fuzz.py runs the long campaign).

Whatever a mutated checkpoint, CSV or NPZ holds, `audit report` exits 0, 1 or 2, never with a
traceback or an internal error (exit 4), runs no code from the model file, and writes nothing
but the outputs it was asked for (nothing at all when it refuses the input).
"""

from __future__ import annotations

import contextlib
import io
import random
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import hostile
from audit.cli import main

FUZZ = settings(max_examples=30, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def seeds(tmp_path_factory):
    root = tmp_path_factory.mktemp("seeds")
    marker = root / "marker.bin"
    return {
        "tabular": hostile.payload(hostile.tabular_model()),
        "image": hostile.payload(hostile.image_model()),
        "tabular_bytes": hostile.payload_bytes(hostile.payload(hostile.tabular_model())),
        "torchscript_bytes": hostile.torchscript_payload(root / "s.pt", marker, where="setstate",
                                                         task=hostile.tabular_model().task.to_dict()).read_bytes(),
        "marker": marker,
    }


def audit_report(model: bytes, data: bytes, data_name: str, *args: str) -> int:
    """`audit report` on these bytes in a fresh folder; asserts the exit code and what was written."""
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        (root / "model.pt").write_bytes(model)
        (root / data_name).write_bytes(data)
        out = root / "out"
        out.mkdir()
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            code = main(["report", str(root / "model.pt"), "--data", str(root / data_name), *args,
                         "-o", str(out / "r.html"), "--json", str(out / "r.json"), "--analyzers", "performance",
                         "--quiet"])
        assert code in (0, 1, 2), err.getvalue()
        assert "Traceback" not in err.getvalue()
        assert sorted(p.name for p in root.iterdir()) == sorted(["model.pt", data_name, "out"])
        written = sorted(p.name for p in out.iterdir())
        assert written == ([] if code == 2 else ["r.html", "r.json"]), (code, written, err.getvalue())
        if code == 2:
            assert len(err.getvalue().strip().splitlines()) == 1, err.getvalue()
        return code


TABLE = hostile.table_bytes(hostile.table())
IMAGES = hostile.npz_bytes(hostile.images())


@FUZZ
@given(rng=st.randoms(use_true_random=False))
def test_mutated_checkpoint_fields(seeds, rng: random.Random):
    kind = rng.choice(["tabular", "image"])
    model = hostile.payload_bytes(hostile.mutate_payload(seeds[kind], rng))
    data, name = (TABLE, "d.csv") if kind == "tabular" else (IMAGES, "d.npz")
    audit_report(model, data, name, *(["--target", "approved"] if kind == "tabular" else []))


@FUZZ
@given(rng=st.randoms(use_true_random=False))
def test_mutated_checkpoint_bytes_and_torchscript(seeds, rng: random.Random):
    raw = seeds["torchscript_bytes"] if rng.random() < 0.3 else seeds["tabular_bytes"]
    raw = hostile.mutate_zip_names(raw, rng) if rng.random() < 0.3 else hostile.mutate_bytes(raw, rng)
    audit_report(raw, TABLE, "d.csv", "--target", "approved")
    assert not seeds["marker"].exists()


@FUZZ
@given(rng=st.randoms(use_true_random=False))
def test_mutated_csv(seeds, rng: random.Random):
    data = hostile.table_bytes(hostile.mutate_table(hostile.table(), rng))
    if rng.random() < 0.2:
        data = hostile.mutate_bytes(data, rng)
    sensitive = rng.choice([[], ["--sensitive", "group"], ["--sensitive", "group", "group"], ["--sensitive", "city"]])
    audit_report(seeds["tabular_bytes"], data, "d.csv", "--target", rng.choice(["approved", "city"]), *sensitive)


@FUZZ
@given(rng=st.randoms(use_true_random=False))
def test_mutated_npz(seeds, rng: random.Random):
    arrays = hostile.images()
    if rng.random() < 0.3:
        data = hostile.npz_with_header(arrays, "x", rng.choice([(10**9, 8, 8), (30, 8), (0, 8, 8), (30, 8, 8, 1)]))
    else:
        data = hostile.npz_bytes(hostile.mutate_arrays(arrays, rng), compressed=rng.random() < 0.5)
    if rng.random() < 0.3:
        data = hostile.mutate_bytes(data, rng)
    audit_report(hostile.payload_bytes(seeds["image"]), data, "d.npz")
