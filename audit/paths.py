"""Input files as the user named them: one clear error for anything that is not a readable
regular file, and file names that are safe to show in a report.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from audit.errors import AuditInputError

KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def input_file(path: str | Path, what: str = "file") -> Path:
    """`path` when it is an existing regular file (symbolic links followed), else an `AuditInputError`
    saying what it is instead. Opening a FIFO or a device would block or read forever."""
    path = Path(path)
    try:
        mode = path.stat().st_mode
    except (FileNotFoundError, NotADirectoryError):
        raise AuditInputError(f"{shown(path)}: no such {what}") from None
    except OSError as exc:
        raise AuditInputError(f"{shown(path)}: cannot read the {what} ({exc.strerror or type(exc).__name__})") from None
    if not stat.S_ISREG(mode):
        kind = next((name for test, name in KINDS if test(mode)), "something else")
        raise AuditInputError(f"{shown(path)}: is {kind}, not a regular file")
    return path


def shown(path: str | Path) -> str:
    """`path` as text that always encodes to UTF-8: bytes of a file name that are not UTF-8 (kept by
    Python as lone surrogates) become U+FFFD."""
    return os.fsencode(path).decode("utf-8", "replace")
