"""Progress bars on a terminal only: quiet in CI (stderr not a TTY) or when asked."""

from __future__ import annotations

import sys

from tqdm import tqdm

_quiet = False


def set_quiet(quiet: bool) -> None:
    global _quiet
    _quiet = quiet


def progress(iterable, *, desc: str, total: int | None = None, disable: bool = False):
    """`iterable` wrapped in a progress bar when one would be seen."""
    hidden = disable or _quiet or not sys.stderr.isatty()
    return tqdm(iterable, desc=desc, total=total, disable=hidden, leave=False, dynamic_ncols=True)
