"""Progress: a bar on a terminal; in a CI log (not a terminal) one line per step with its time; nothing when quiet."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

from tqdm import tqdm

T = TypeVar("T")
_quiet = False


def set_quiet(quiet: bool) -> None:
    global _quiet
    _quiet = quiet


def progress(iterable, *, desc: str, total: int | None = None, disable: bool = False):
    """`iterable` wrapped in a progress bar when one would be seen."""
    hidden = disable or _quiet or not sys.stderr.isatty()
    return tqdm(iterable, desc=desc, total=total, disable=hidden, leave=False, dynamic_ncols=True)


def steps(items: Iterable[T], *, desc: str, name: Callable[[T], str]) -> Iterator[T]:
    """`items`, one at a time, with the running one named on a terminal's bar, or a line
    "<desc>: <name> <seconds> s" on stderr after each when stderr is not a terminal."""
    items = list(items)
    if _quiet:
        yield from items
    elif sys.stderr.isatty():
        bar = tqdm(items, desc=desc, leave=False, dynamic_ncols=True)
        for item in bar:
            bar.set_postfix_str(name(item))
            yield item
    else:
        for i, item in enumerate(items, 1):
            start = time.perf_counter()
            yield item
            print(f"{desc} {i}/{len(items)}: {name(item)} {time.perf_counter() - start:.1f} s", file=sys.stderr,
                  flush=True)
