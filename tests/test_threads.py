"""Threads: counted from the CPUs the process may use (affinity, cgroup quota), set by --threads or
AUDIT_THREADS, and a count the user chose (OMP_NUM_THREADS, a lower torch.set_num_threads) kept."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import audit.cli
from audit._util.threads import cgroup_cpu_quota, prepare_environment, usable_cpus

ROOT = Path(__file__).resolve().parents[1]


def cgroups(root: Path, limits: dict[str, str]) -> Path:
    for folder, text in limits.items():
        (root / folder).mkdir(parents=True, exist_ok=True)
        (root / folder / "cpu.max").write_text(text + "\n")
    return root


def test_cgroup_quota_is_the_smallest_of_the_process_cgroup_and_its_ancestors(tmp_path):
    root = cgroups(tmp_path, {".": "max 100000", "ci": "300000 100000", "ci/job": "150000 100000"})
    assert cgroup_cpu_quota(root, "/ci/job") == 1.5
    assert cgroup_cpu_quota(root, "/ci") == 3.0
    assert cgroup_cpu_quota(root, "/other") is None  # only the root's file, without a limit
    assert cgroup_cpu_quota(tmp_path / "no-cgroup-v2", "/") is None


def test_usable_cpus_follow_the_quota_rounded_up(tmp_path):
    affinity = len(os.sched_getaffinity(0))
    assert usable_cpus(cgroups(tmp_path / "a", {".": "50000 100000"})) == 1
    assert usable_cpus(cgroups(tmp_path / "b", {".": "max 100000"})) == affinity
    assert usable_cpus(cgroups(tmp_path / "c", {".": f"{100000 * affinity + 1} 100000"})) == affinity


SHOW_THREADS = """
import json, sys, torch
from threadpoolctl import threadpool_info
import audit._util.threads as threads
threads.usable_cpus = lambda: int(sys.argv[1])
if sys.argv[2] != "-":
    torch.set_num_threads(int(sys.argv[2]))
chosen = threads.configure_threads()
blas = sorted({lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"})
print(json.dumps([chosen, torch.get_num_threads(), blas]))
"""


@pytest.mark.parametrize("usable, before, env, expected", [
    (1, "-", {}, 1),                                # a quota of 1 CPU on a larger machine: 1 thread
    (2, "1", {}, 1),                                # torch.set_num_threads(1) by the user stays
    (1, "-", {"AUDIT_THREADS": "3"}, 3),            # asked for: more than the CPUs is allowed
    (1, "2", {"OMP_NUM_THREADS": "2"}, 2),          # the user's OMP_NUM_THREADS: left alone
], ids=["quota", "user-set-lower", "audit-threads", "omp-num-threads"])
def test_configure_threads(usable, before, env, expected):
    clean = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "AUDIT_THREADS")}
    proc = subprocess.run([sys.executable, "-c", SHOW_THREADS, str(usable), before], capture_output=True, text=True,
                          env={**clean, **env, "PYTHONPATH": str(ROOT)}, timeout=600)
    chosen, torch_threads, blas = json.loads(proc.stdout or "null") or pytest.fail(proc.stderr)
    assert chosen == torch_threads == expected
    if "OMP_NUM_THREADS" not in env:
        assert blas in ([], [expected])  # numpy's BLAS, when it has a thread pool, follows


def test_bad_thread_count_is_one_line(capsys, monkeypatch):
    monkeypatch.setenv("AUDIT_THREADS", "many")
    assert audit.cli.main(["report", "model.pt"]) == 2
    assert capsys.readouterr().err == "error: AUDIT_THREADS 'many': expected a positive whole number of threads\n"
    assert audit.cli.main(["report", "model.pt", "--threads", "0"]) == 2
    assert "--threads '0': expected a positive whole number" in capsys.readouterr().err


def test_threads_option_reaches_the_settings(capsys, monkeypatch, tmp_path):
    asked = []
    monkeypatch.setattr(audit.cli, "configure_threads", asked.append)
    assert audit.cli.main(["report", str(tmp_path / "missing.pt"), "--threads", "3"]) == 2
    assert asked == [3]


def test_idle_openmp_threads_sleep_unless_the_user_chose(monkeypatch):
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    prepare_environment()
    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    prepare_environment()
    assert os.environ["OMP_WAIT_POLICY"] == "ACTIVE"
