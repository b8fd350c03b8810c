"""Threads of torch and the BLAS libraries: no more than the CPUs this process may use.

torch starts one OpenMP thread per core of the machine, whatever share of it the process may use
(an affinity mask, a container's CPU quota), and an idle OpenMP thread spins for its next task
instead of sleeping. Two audits on one loaded 2-core machine then spin against each other: a
forward and backward pass of a small MLP took 45 s instead of 0.2 s (benchmarks/concurrency.py).

This module imports nothing heavy: `prepare_environment` must run before torch loads.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from audit._util.errors import AuditInputError

THREADS_VARIABLE = "AUDIT_THREADS"


def prepare_environment() -> None:
    """Before torch loads: idle OpenMP threads sleep instead of spinning, unless the user chose."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def usable_cpus(cgroup_root: Path = Path("/sys/fs/cgroup")) -> int:
    """CPUs this process may run on: its affinity mask, lowered to its cgroup's CPU quota (rounded up)."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    quota = cgroup_cpu_quota(cgroup_root)
    return cpus if quota is None else max(1, min(cpus, math.ceil(quota)))


def cgroup_cpu_quota(root: Path = Path("/sys/fs/cgroup"), own: str | None = None) -> float | None:
    """CPUs' worth of time per period that this process's cgroup (v2; `own` is its path, read from
    /proc/self/cgroup) and its ancestors allow, the smallest of their `cpu.max` files; None when none
    sets a limit (or there is no cgroup v2)."""
    if own is None:
        try:
            lines = Path("/proc/self/cgroup").read_text().splitlines()
        except OSError:
            lines = []
        own = next((line[3:] for line in lines if line.startswith("0::")), "/")
    parts = Path(own).relative_to("/").parts if own.startswith("/") else ()
    quotas = []
    for depth in range(len(parts), -1, -1):  # a folder missing here (no cgroup namespace) is skipped
        try:
            quota, period = (root.joinpath(*parts[:depth]) / "cpu.max").read_text().split()
            if quota != "max":
                quotas.append(int(quota) / int(period))
        except (OSError, ValueError):
            continue
    return min(quotas, default=None)


def configure_threads(threads: int | None = None) -> int:
    """Set the threads of torch (intra-op and inter-op) and of the BLAS libraries numpy, scikit-learn,
    shap and lime call; return torch's count.

    `threads`, else the AUDIT_THREADS variable, sets every count. Without either, an OMP_NUM_THREADS
    the user set is kept as it is, and otherwise each count is lowered to `usable_cpus()`: a lower
    count chosen before (torch.set_num_threads) stays.
    """
    import torch
    from threadpoolctl import threadpool_limits

    if threads is None and os.environ.get(THREADS_VARIABLE, "").strip():
        threads = _positive(os.environ[THREADS_VARIABLE], THREADS_VARIABLE)
    elif threads is not None:
        threads = _positive(str(threads), "--threads")
    if threads is None and "OMP_NUM_THREADS" in os.environ:
        return torch.get_num_threads()
    intra = threads or min(torch.get_num_threads(), usable_cpus())
    torch.set_num_threads(intra)
    interop = threads or min(torch.get_num_interop_threads(), intra)
    if interop != torch.get_num_interop_threads():
        try:
            torch.set_num_interop_threads(interop)
        except RuntimeError:  # settable once, before any inter-op work: the earlier setting stays
            pass
    threadpool_limits(limits=intra, user_api="blas")
    return intra


def _positive(text: str, where: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise AuditInputError(f"{where} {text!r}: expected a positive whole number of threads")
    return value
