"""Output files: checked before any model loads, written as one set, never half-written, not even on Ctrl-C."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import audit
import audit.cli
import audit.models.checkpoint
import audit.cli.outputs
from audit.io import checkpoint
from audit.cli import main
from audit.models.training import TrainConfig, train

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> dict[str, Path]:
    """A CSV, a model trained on it, and a policy, in one folder."""
    folder = tmp_path_factory.mktemp("small")
    rng = np.random.default_rng(0)
    n = 200
    frame = pd.DataFrame({"x0": rng.normal(size=n), "x1": rng.normal(size=n), "site": rng.choice(["a", "b"], n)})
    frame["label"] = np.where(frame["x0"] > 0, "yes", "no")
    frame.to_csv(folder / "data.csv", index=False)
    data = audit.Dataset.from_dataframe(frame, target="label", sensitive=["site"], name="small")
    model = train("mlp", *data.split([0.6, 0.2, 0.2], seed=0), config=TrainConfig(epochs=2), quiet=True).model
    checkpoint.save(model, folder / "model.pt")
    (folder / "policy.toml").write_text('[gates."performance.accuracy"]\nmin = 0.0\n')
    return {"folder": folder, "data": folder / "data.csv", "model": folder / "model.pt",
            "policy": folder / "policy.toml"}


def report_args(small, **outputs) -> list[str]:
    args = ["report", str(small["model"]), "--data", str(small["data"]), "--target", "label", "--sensitive", "site",
            "--policy", str(small["policy"]), "--analyzers", "performance", "--quiet"]
    for option, path in outputs.items():
        args += [{"html": "-o"}.get(option, f"--{option}"), str(path)]
    return args


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() if p.is_file() else b"<dir>" for p in sorted(folder.iterdir())}


def temporary_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*.tmp"))


# -- every output path is checked before any model loads -----------------------------------------

PATH_CASES = {
    "-o is the model": (lambda s, t: dict(html=s["model"]), r"-o .*model\.pt: the same file as model"),
    "--json is the data": (lambda s, t: dict(html=t / "r.html", json=s["data"]),
                           r"--json .*data\.csv: the same file as --data"),
    "--junit is the policy": (lambda s, t: dict(html=t / "r.html", junit=s["policy"]),
                              r"--junit .*policy\.toml: the same file as --policy"),
    "-o is --json": (lambda s, t: dict(html=t / "r.html", json=t / "r.html"), r"--json .*r\.html: the same file as -o"),
    "--markdown is --junit through a symlink": (
        lambda s, t: dict(html=t / "r.html", junit=t / "r.xml", markdown=_link(t / "r.md", t / "r.xml")),
        r"--markdown .*r\.md: the same file as --junit"),
    "-o is a symlink to the model": (lambda s, t: dict(html=_link(t / "r.html", s["model"])),
                                     r"-o .*r\.html: the same file as model"),
    "-o is a hard link to the data": (lambda s, t: dict(html=_hardlink(t / "r.html", s["data"])),
                                      r"-o .*r\.html: the same file as --data"),
    "-o is a directory": (lambda s, t: dict(html=t), r"-o .*: is a directory; give a file name"),
    "--json in a folder that does not exist": (lambda s, t: dict(html=t / "r.html", json=t / "no" / "r.json"),
                                               r"--json .*r\.json: folder .*no does not exist"),
    "--junit below a file": (lambda s, t: dict(html=t / "r.html", junit=s["data"] / "r.xml"),
                             r"--junit .*r\.xml: folder .*data\.csv does not exist"),
    "-o in /proc": (lambda s, t: dict(html="/proc/audit-report.html"), r"-o /proc/audit-report\.html: cannot write in"),
    "-o a device": (lambda s, t: dict(html="/dev/null"), r"-o /dev/null: not a regular file"),
}


def _link(link: Path, target: Path) -> Path:
    link.symlink_to(target)
    return link


def _hardlink(link: Path, target: Path) -> Path:
    os.link(target, link)
    return link


@pytest.mark.parametrize("case", list(PATH_CASES), ids=list(PATH_CASES))
def test_bad_output_paths_stop_before_the_model_loads(capsys, tmp_path, small, monkeypatch, case):
    build, pattern = PATH_CASES[case]
    outputs = build(small, tmp_path)
    monkeypatch.setattr(audit.models.checkpoint, "load", lambda *a, **k: pytest.fail("the model was loaded"))
    before, inputs_before = snapshot(tmp_path), snapshot(small["folder"])
    code = main(report_args(small, **outputs))
    _, err = capsys.readouterr()
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: "), err
    assert re.search(pattern, err), err
    assert snapshot(tmp_path) == before and snapshot(small["folder"]) == inputs_before


def test_compare_outputs_are_checked_against_both_models(capsys, tmp_path, small, monkeypatch):
    monkeypatch.setattr(audit.models.checkpoint, "load", lambda *a, **k: pytest.fail("a model was loaded"))
    other = tmp_path / "other.pt"
    other.write_bytes(small["model"].read_bytes())
    code = main(["compare", str(small["model"]), str(other), "-o", str(tmp_path / "c.html"), "--json", str(other)])
    _, err = capsys.readouterr()
    assert code == 2 and "--json" in err and "the same file as candidate" in err
    assert other.read_bytes() == small["model"].read_bytes()


def test_train_refuses_to_write_its_checkpoint_over_the_data(capsys, small):
    before = small["data"].read_bytes()
    code = main(["train", "mlp", "--data", str(small["data"]), "--target", "label", "-o", str(small["data"]),
                 "--quiet"])
    _, err = capsys.readouterr()
    assert code == 2 and "the same file as --data" in err
    assert small["data"].read_bytes() == before


# -- outputs are written as a set ----------------------------------------------------------------


def test_all_outputs_are_written_together(capsys, tmp_path, small):
    outputs = dict(html=tmp_path / "r.html", json=tmp_path / "r.json", junit=tmp_path / "r.xml",
                   markdown=tmp_path / "r.md")
    assert main(report_args(small, **outputs)) == 0, capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.html", "r.json", "r.md", "r.xml"]
    assert all(p.stat().st_size > 0 for p in tmp_path.iterdir())


@pytest.mark.parametrize("failure, code", [("render", 4), ("write", 4), ("interrupt", 130)])
def test_a_failure_leaves_the_previous_reports_whole(capsys, tmp_path, small, monkeypatch, failure, code):
    outputs = dict(html=tmp_path / "r.html", json=tmp_path / "r.json", markdown=tmp_path / "r.md")
    for path in outputs.values():
        path.write_text("previous report")
    if failure == "render":  # the JSON cannot be made after the HTML was
        monkeypatch.setattr(audit.executor.runner.AuditRun, "to_json", lambda self: 1 / 0)
    else:  # the disk fills, or Ctrl-C comes, while the second file is written
        calls = []

        def writer(text):
            def write(f):
                calls.append(text)
                f.write(text[:100].encode())
                if len(calls) == 2:
                    raise OSError(28, "No space left on device") if failure == "write" else KeyboardInterrupt
                f.write(text[100:].encode())
            return write
        monkeypatch.setattr(audit.cli.outputs, "text_writer", writer)
    assert main(report_args(small, **outputs)) == code
    _, err = capsys.readouterr()
    assert len(err.strip().splitlines()) == 1, err
    assert {p.name: p.read_text() for p in tmp_path.iterdir()} == {
        "r.html": "previous report", "r.json": "previous report", "r.md": "previous report"}


# -- Ctrl-C and SIGTERM: one word, the usual exit code, no traceback, no temporary file ----------

PAUSING = """
import sys, time
import audit.cli as cli, audit.cli.outputs as outputs, audit.executor.runner as runner

def pause(*args, **kwargs):
    print("paused", flush=True)
    time.sleep(300)

if sys.argv[1] == "run":
    runner.execute = pause
else:
    def writer(text):
        def write(f):
            f.write(text[:100].encode())
            f.flush()
            pause()
        return write
    outputs.text_writer = writer
sys.exit(cli.main(sys.argv[2:]))
"""


@pytest.mark.parametrize("where, signum, code, message", [
    ("run", signal.SIGINT, 130, "interrupted"),
    ("write", signal.SIGTERM, 143, "terminated"),
], ids=["ctrl-c-during-the-audit", "sigterm-during-the-write"])
def test_a_signal_mid_run_leaves_the_previous_reports_and_no_temporary_file(tmp_path, small, where, signum, code,
                                                                            message):
    outputs = dict(html=tmp_path / "r.html", json=tmp_path / "r.json", junit=tmp_path / "r.xml")
    for path in outputs.values():
        path.write_text("previous report")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", PAUSING, where, *report_args(small, **outputs)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline() == "paused\n", proc.stderr.read()
        if where == "write":
            assert temporary_files(tmp_path), "the signal should arrive while a temporary file is open"
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=600)
    finally:
        proc.kill()
    assert proc.returncode == code, err
    assert err == f"{message}\n"
    assert temporary_files(tmp_path) == []
    assert {p.name: p.read_text() for p in tmp_path.iterdir()} == {
        "r.html": "previous report", "r.json": "previous report", "r.xml": "previous report"}
