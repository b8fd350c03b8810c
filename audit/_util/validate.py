"""Checks on untrusted plain data (a checkpoint's fields, its task metadata).

Each check returns the value when it has the expected type and range, else raises an
`AuditInputError` naming where the value sits (e.g. `task.encoder.means[3]`) and what
was found, by type name only: a hostile value is never formatted into the message.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from audit._util.errors import AuditInputError

MAX_DEPTH = 32  # nesting of task metadata; ours is at most 4 deep
MAX_INT = 2**31 - 1


def found(value) -> str:
    """What a bad value is, in a few words: its type, and the value itself only when short and plain."""
    if isinstance(value, bool) or value is None:
        return repr(value)
    if isinstance(value, (int, float)) and len(repr(value)) <= 24:
        return repr(value)
    if isinstance(value, str) and len(value) <= 24:
        return repr(value)
    return f"a {type(value).__name__}"


def fail(where: str, expected: str, value) -> AuditInputError:
    return AuditInputError(f"{where} must be {expected}, found {found(value)}")


def mapping(value, where: str) -> Mapping:
    """A mapping with string keys."""
    if not isinstance(value, Mapping):
        raise fail(where, "a mapping", value)
    for key in value:
        if not isinstance(key, str):
            raise fail(f"{where} keys", "strings", key)
    return value


def string(value, where: str) -> str:
    if not isinstance(value, str):
        raise fail(where, "a string", value)
    return value


def strings(value, where: str) -> list[str]:
    if not isinstance(value, (list, tuple)):
        raise fail(where, "a list of strings", value)
    return [string(v, f"{where}[{i}]") for i, v in enumerate(value)]


def integer(value, where: str, *, low: int = 1, high: int = MAX_INT) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise fail(where, "an integer", value)
    if not low <= value <= high:
        raise fail(where, f"an integer from {low} to {high}", value)
    return value


def number(value, where: str, *, low: float = -math.inf, high: float = math.inf) -> float:
    """A finite int or float within [low, high]."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise fail(where, "a number", value)
    if not math.isfinite(value):
        raise fail(where, "a finite number", value)
    if not low <= value <= high:
        raise fail(where, f"a number from {low:g} to {high:g}", value)
    return float(value)


def numbers(value, where: str, **limits) -> list[float]:
    if not isinstance(value, (list, tuple)):
        raise fail(where, "a list of numbers", value)
    return [number(v, f"{where}[{i}]", **limits) for i, v in enumerate(value)]


def boolean(value, where: str) -> bool:
    if not isinstance(value, bool):
        raise fail(where, "true or false", value)
    return value


def plain(value, where: str, depth: int = 0):
    """JSON-like data only: strings, finite numbers, booleans, None, lists, string-keyed mappings."""
    if depth > MAX_DEPTH:
        raise AuditInputError(f"{where} is nested more than {MAX_DEPTH} levels deep")
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return number(value, where)
    if isinstance(value, (list, tuple)):
        return [plain(v, f"{where}[{i}]", depth + 1) for i, v in enumerate(value)]
    if isinstance(value, Mapping):
        return {k: plain(v, f"{where}.{k}", depth + 1) for k, v in mapping(value, where).items()}
    raise fail(where, "plain data (text, numbers, lists, tables)", value)


def known_options(cls, d: Mapping, what: str) -> None:
    """Refuse keys of `d` that are not fields of the dataclass `cls` (a typo in a spec or a flag)."""
    known = set(cls.__dataclass_fields__)
    unknown = sorted(set(d) - known)
    if unknown:
        raise AuditInputError(f"{what}: unknown option(s) {unknown}; known: {sorted(known)}")
