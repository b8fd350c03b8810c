"""Durations as people write and read them: "5m" in, "5 min 00 s" out."""

from __future__ import annotations

import re

from audit._util.errors import AuditInputError

DURATION_UNITS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600}


def parse_duration(text: str) -> float:
    """Seconds of a duration such as 90, 90s, 5m, 1h or 1m30s; AuditInputError for anything else."""
    parts = re.fullmatch(r"\s*((?:\d+(?:\.\d+)?\s*(?:s|sec|m|min|h)?\s*)+)", str(text))
    pieces = re.findall(r"(\d+(?:\.\d+)?)\s*(sec|min|s|m|h)?", parts.group(1)) if parts else []
    seconds = sum(float(number) * DURATION_UNITS[unit or "s"] for number, unit in pieces)
    if not pieces or seconds <= 0:
        raise AuditInputError(f"{text!r} is not a duration: expected e.g. 90s, 5m, 1h or 1m30s")
    return seconds


def budget_seconds(budget: float | str | None) -> float | None:
    """A time limit given as seconds or as a duration ("5m"); None stays None."""
    if budget is None:
        return None
    if isinstance(budget, str):
        return parse_duration(budget)
    if isinstance(budget, bool) or not isinstance(budget, (int, float)) or not budget > 0:
        raise AuditInputError(f"budget {budget!r} is not a duration: expected seconds above 0, or e.g. '5m'")
    return float(budget)


def duration(seconds: float) -> str:
    """`seconds` as a person reads them: 0.4 s, 42 s, 3 min 05 s, 1 h 02 min."""
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{minutes} min {secs:02d} s" if minutes else f"{seconds:.1f} s" if seconds < 10 else f"{secs} s"
