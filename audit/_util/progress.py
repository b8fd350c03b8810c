"""Progress: a bar on a terminal; in a CI log (not a terminal) one line per step with its time; nothing when quiet."""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

from tqdm import tqdm

from audit._util.durations import duration

T = TypeVar("T")
_quiet = False
_label = ""


def set_quiet(quiet: bool) -> None:
    global _quiet
    _quiet = quiet


@contextlib.contextmanager
def labelled(label: str) -> Iterator[None]:
    """Every bar and progress line inside starts with `label`: audit compare's "baseline" and "candidate"."""
    global _label
    previous, _label = _label, f"{label} "
    try:
        yield
    finally:
        _label = previous


def progress(iterable, *, desc: str, total: int | None = None, disable: bool = False):
    """`iterable` wrapped in a progress bar when one would be seen."""
    hidden = disable or _quiet or not sys.stderr.isatty()
    return tqdm(iterable, desc=_label + desc, total=total, disable=hidden, leave=False, dynamic_ncols=True)


def say(line: str) -> None:
    """One line on stderr (above a running bar), unless quiet."""
    if not _quiet:
        tqdm.write(_label + line, file=sys.stderr)


def announce(lines: Iterable[str]) -> None:
    """`lines` on stderr, before the work they describe (the plan and its ETA); nothing when quiet."""
    for line in lines:
        say(line)


def steps(items: Iterable[T], *, desc: str, name: Callable[[T], str],
          planned: Callable[[T], float] | None = None) -> Iterator[T]:
    """`items`, one at a time, with the running one named on a terminal's bar, or a line
    "<desc> <i>/<n>: <name> <seconds> s" on stderr after each when stderr is not a terminal. With the
    `planned` seconds of each item, both also say the time left: the plan of the items not yet done."""
    items = list(items)
    desc = _label + desc
    left = [sum(planned(later) for later in items[i:]) for i in range(len(items) + 1)] if planned else None
    if _quiet:
        yield from items
    elif sys.stderr.isatty():
        bar = tqdm(items, desc=desc, leave=False, dynamic_ncols=True)
        for i, item in enumerate(bar):
            bar.set_postfix_str(name(item) + (f", about {duration(left[i])} left" if left else ""))
            yield item
    else:
        for i, item in enumerate(items, 1):
            start = time.perf_counter()
            yield item
            after = f", about {duration(left[i])} left" if left and i < len(items) else ""
            print(f"{desc} {i}/{len(items)}: {name(item)} {time.perf_counter() - start:.1f} s{after}",
                  file=sys.stderr, flush=True)


REPORT_EVERY = 60.0  # seconds between progress lines in a CI log


def rows(chunks: Iterable[T], *, desc: str, total: int | None, size: Callable[[T], int] = len) -> Iterator[T]:
    """`chunks` of rows, counted: a bar with rows per second and the time left on a terminal; in a CI log
    (not a terminal) a line "<desc>: <rows> of <total> rows, <rate> rows/s, <left> left" once a minute and
    at the end."""
    if _quiet:
        yield from chunks
        return
    desc = _label + desc
    if sys.stderr.isatty():
        with tqdm(total=total, desc=desc, unit=" rows", unit_scale=True, leave=False, dynamic_ncols=True) as bar:
            for chunk in chunks:
                yield chunk
                bar.update(size(chunk))
        return
    start = last = time.perf_counter()
    done = 0
    for chunk in chunks:
        yield chunk
        done += size(chunk)
        now = time.perf_counter()
        if now - last >= REPORT_EVERY:
            last = now
            print(_rows_line(desc, done, total, now - start), file=sys.stderr, flush=True)
    print(_rows_line(desc, done, total, time.perf_counter() - start, finished=True), file=sys.stderr, flush=True)


def _rows_line(desc: str, done: int, total: int | None, seconds: float, finished: bool = False) -> str:
    rate = done / seconds if seconds > 0 else 0.0
    of = f" of {total:,}" if total else ""
    if finished:
        return f"{desc}: {done:,} rows in {seconds:.1f} s, {rate:,.0f} rows/s"
    left = f", {duration((total - done) / rate)} left" if total and rate > 0 else ""
    return f"{desc}: {done:,}{of} rows, {rate:,.0f} rows/s{left}"
