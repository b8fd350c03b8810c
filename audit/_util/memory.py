"""How much memory an audit may take: the budget every analyzer's passes are sized by.

The budget bounds the process's resident memory. Unless given (`audit.run(max_memory=...)`,
`--max-memory 2G`) it is what the process holds when the run starts plus DEFAULT_SHARE of the memory
still available to it: /proc/meminfo's MemAvailable (free memory and the caches the kernel can drop),
lowered to what the process's cgroup still allows (v2 `memory.max` less `memory.current`, up the
hierarchy; v1 `memory.limit_in_bytes` less `memory.usage_in_bytes`), and where there is no /proc, the
free physical pages (`os.sysconf`). Reading it imports nothing heavy: the command line parses it at
--help speed.

A pass that must hold fewer rows than it would without the budget says so: `note` records one line
in the running analyzer's result (the executor collects them with `noted`) and prints it once.
"""

from __future__ import annotations

import contextlib
import os
import resource
import sys
from collections.abc import Iterator
from contextvars import ContextVar
from pathlib import Path

from audit._util.errors import AuditInputError
from audit._util.paths import format_size, parse_size
from audit._util.progress import say

DEFAULT_SHARE = 0.5  # of the memory available when the run starts
#: Below this a budget cannot hold the libraries an audit imports (torch alone is about 300 MB resident).
SMALLEST_BUDGET = 256 << 20

_budget: ContextVar[int | None] = ContextVar("audit_max_memory", default=None)
_notes: ContextVar[list[str] | None] = ContextVar("audit_memory_notes", default=None)


def as_bytes(max_memory: int | str) -> int:
    """A budget given as bytes or as text (`2G`, `512MiB`, `2GB`), checked: one clear line when it is not one."""
    if isinstance(max_memory, str):
        value = parse_size(max_memory)
    elif isinstance(max_memory, int) and not isinstance(max_memory, bool):
        value = max_memory
    else:
        raise AuditInputError(f"a memory budget must be a number of bytes or a size such as 2G, found {max_memory!r}")
    if value < SMALLEST_BUDGET:
        raise AuditInputError(f"a memory budget of {format_size(value)} is too small: an audit needs at least "
                              f"{format_size(SMALLEST_BUDGET)}")
    return value


def default_budget() -> int:
    """What the process holds now plus DEFAULT_SHARE of the memory still available to it."""
    return resident_bytes() + int(DEFAULT_SHARE * available_bytes())


@contextlib.contextmanager
def limited(max_memory: int | str | None = None) -> Iterator[int]:
    """Inside, passes are sized to keep the process under `max_memory` bytes (None: `default_budget()`)."""
    budget = default_budget() if max_memory is None else as_bytes(max_memory)
    token = _budget.set(budget)
    try:
        yield budget
    finally:
        _budget.reset(token)


def budget() -> int:
    """The running audit's budget; outside one (`audit.explain` called alone), the default as of now."""
    return _budget.get() or default_budget()


def headroom() -> int:
    """Bytes the process may still grow by within the budget."""
    return max(0, budget() - resident_bytes())


@contextlib.contextmanager
def noted() -> Iterator[list[str]]:
    """Collects the notes made inside (each once), in order."""
    token = _notes.set([])
    try:
        yield _notes.get()
    finally:
        _notes.reset(token)


def note(text: str) -> None:
    """A pass had to shrink: recorded for the running analyzer's result, and one progress line (once each)."""
    notes = _notes.get()
    if notes is not None and text in notes:
        return
    if notes is not None:
        notes.append(text)
    say(f"memory: {text}")


# -- reading the machine ------------------------------------------------------------------------


def resident_bytes() -> int:
    """The process's resident memory now (VmRSS), or its peak where /proc is missing."""
    return _status_bytes("VmRSS") or peak_resident_bytes()


def peak_resident_bytes() -> int:
    """The most resident memory the process has held (VmHWM; ru_maxrss, in KiB on Linux and bytes on macOS)."""
    peak = _status_bytes("VmHWM")
    if peak:
        return peak
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss if sys.platform == "darwin" else rss * 1024


def available_bytes(cgroup_root: Path = Path("/sys/fs/cgroup"), meminfo: Path = Path("/proc/meminfo")) -> int:
    """Memory the process could still take: the machine's available memory, lowered to its cgroup's room."""
    machine = _meminfo_available(meminfo)
    if machine is None:
        machine = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    room = cgroup_room(cgroup_root)
    return machine if room is None else min(machine, room)


def cgroup_room(root: Path = Path("/sys/fs/cgroup"), own: str | None = None) -> int | None:
    """Bytes the process's cgroup and its ancestors still allow (the least of limit - usage over those that
    set a limit); None when none does."""
    rooms = []
    for v2, folder in _cgroup_folders(root, own):
        limit, usage = ("memory.max", "memory.current") if v2 else ("memory.limit_in_bytes", "memory.usage_in_bytes")
        try:
            text = (folder / limit).read_text().strip()
            if text != "max" and int(text) < 1 << 60:  # v1 writes "no limit" as about 2**63
                rooms.append(max(0, int(text) - int((folder / usage).read_text())))
        except (OSError, ValueError):
            continue
    return min(rooms, default=None)


def _cgroup_folders(root: Path, own: str | None) -> Iterator[tuple[bool, Path]]:
    """(v2?, folder) of the process's memory cgroup and each ancestor, from /proc/self/cgroup (`own`: its text)."""
    if own is None:
        try:
            own = Path("/proc/self/cgroup").read_text()
        except OSError:
            return
    for line in own.splitlines():
        hierarchy, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        v2 = hierarchy == "0" and controllers == ""
        if not v2 and "memory" not in controllers.split(","):
            continue
        base = root if v2 else root / "memory"
        parts = Path(path).relative_to("/").parts if path.startswith("/") else ()
        for depth in range(len(parts), -1, -1):
            yield v2, base.joinpath(*parts[:depth])


def _meminfo_available(meminfo: Path) -> int | None:
    try:
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _status_bytes(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None
