"""Input files as the user named them: one clear error for anything that is not a readable
regular file or is too large to read whole, and file names that are safe to show in a report.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path

from audit._util.errors import AuditInputError

KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


# Tables, NPZ arrays, checkpoints and TOML files are read whole: a larger file is refused before any
# byte is read (pandas and torch need several times its size in memory).
MAX_INPUT_BYTES = 1 << 30
_max_input_bytes = contextvars.ContextVar("max_input_bytes", default=MAX_INPUT_BYTES)
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


@contextlib.contextmanager
def input_size_limit(max_bytes: int) -> Iterator[None]:
    """Input files up to `max_bytes` are read inside this block (`audit --max-input-size`)."""
    token = _max_input_bytes.set(max_bytes)
    try:
        yield
    finally:
        _max_input_bytes.reset(token)


def parse_size(text: str) -> int:
    """`1073741824`, `512M`, `4G` or `4GiB` as bytes (K, M, G, T are powers of 1024)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?\s*", text, flags=re.IGNORECASE)
    if match is None:
        raise AuditInputError(f"size {text!r}: expected a number of bytes, optionally with K, M, G or T (e.g. 4G)")
    return int(float(match[1]) * _UNITS[match[2].upper()])


def format_size(n: int) -> str:
    """`n` bytes in GiB, MiB or KiB with one decimal, or in bytes below 1 KiB."""
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def input_file(path: str | Path, what: str = "file", *, whole: bool = True) -> Path:
    """`path` when it is an existing regular file (symbolic links followed) no larger than the input size
    limit, else an `AuditInputError` saying what it is instead. Opening a FIFO or a device would block or
    read forever. A file that is not read `whole` (streamed in chunks) has no size limit."""
    path = Path(path)
    try:
        info = path.stat()
    except (FileNotFoundError, NotADirectoryError):
        raise AuditInputError(f"{shown(path)}: no such {what}") from None
    except OSError as exc:
        raise AuditInputError(f"{shown(path)}: cannot read the {what} ({exc.strerror or type(exc).__name__})") from None
    if not stat.S_ISREG(info.st_mode):
        kind = next((name for test, name in KINDS if test(info.st_mode)), "something else")
        raise AuditInputError(f"{shown(path)}: is {kind}, not a regular file")
    limit = _max_input_bytes.get()
    if whole and info.st_size > limit:
        raise AuditInputError(f"{shown(path)}: {info.st_size:,} bytes ({format_size(info.st_size)}) is over the "
                              f"{format_size(limit)} limit for input files, which are read whole "
                              "(raise it with --max-input-size)")
    return path


def shown(path: str | Path) -> str:
    """`path` as text that always encodes to UTF-8: bytes of a file name that are not UTF-8 (kept by
    Python as lone surrogates) become U+FFFD."""
    return os.fsencode(path).decode("utf-8", "replace")
