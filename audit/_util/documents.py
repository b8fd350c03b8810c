"""TOML and JSON text read as plain data, bounded before it is parsed.

Python's parsers recurse once per nested list, table or object (tomllib also keeps every prefix of a dotted
key), so a 2 KB file nesting 1,000 lists ends in a RecursionError and 100,000 dotted keys exhaust memory. The
text is scanned first, in one linear pass that skips strings and comments: its size and its nesting (brackets,
braces, and the dots of a TOML key) are checked against limits no real policy, spec or config comes near.
Every parser error is then one line naming the file.
"""

from __future__ import annotations

import json
import re
import tomllib
from itertools import accumulate
from pathlib import Path

from audit._util.errors import AuditInputError

MAX_DEPTH = 64  # lists, tables and objects inside one another (a policy nests 3, a Hugging Face config 4)
MAX_TOML_BYTES = 1 << 20
SPECIAL = re.compile(r"[\[\]{}\"'#.=,\n]")
BASIC_STRING = re.compile(r'"(?:[^"\\\n]|\\.)*')  # a TOML "string" up to its closing quote or line end
JSON_STRING = re.compile(r'"(?:[^"\\]++|\\.)*+(?:"|\\?\Z)', re.DOTALL)  # possessive: linear on any text
NOT_BRACKET = re.compile(r"[^\[\]{}]+")


def json_depth(text: str) -> int:
    """The deepest nesting of lists and objects in JSON text (strings removed first, at the regex engine's speed)."""
    brackets = NOT_BRACKET.sub("", JSON_STRING.sub("", text))
    return max(accumulate(1 if c in "[{" else -1 for c in brackets), default=0)


def toml_depth(text: str) -> int:
    """The deepest nesting of TOML text: arrays, inline tables, table headers and the dotted parts of a key."""
    stack: list[str] = []  # "[" a list, "{" an inline table or object, "h" a TOML table header
    deepest = dots = 0
    key = True  # whether the scanner is in a key (where dots nest) rather than a value
    at = 0
    while (match := SPECIAL.search(text, at)) is not None:
        char, at = match.group(), match.end()
        if char in "[{":
            header = char == "[" and (not stack and key or stack[-1:] == ["h"])
            stack.append("h" if header else char)
            key = header or char == "{"
            deepest = max(deepest, len(stack) + dots)
        elif char in "]}":
            if stack:
                stack.pop()
            if not stack or stack[-1] != "h":
                dots = 0
        elif char == "#":
            at = text.find("\n", at)
            at = len(text) if at < 0 else at
        elif char == '"':
            if text.startswith('""', at):
                close = text.find('"""', at + 2)
                at = len(text) if close < 0 else close + 3
            else:
                at = BASIC_STRING.match(text, at - 1).end() + 1
        elif char == "'":
            close = text.find("'''", at + 2) if text.startswith("''", at) else text.find("'", at)
            at = len(text) if close < 0 else close + (3 if text.startswith("''", match.end()) else 1)
        elif char == "." and key:
            dots += 1
            deepest = max(deepest, len(stack) + dots)
        elif char in "=,\n":
            key = char == "\n" and not stack or char == "," and stack[-1:] == ["{"]
            dots = 0
    return deepest


def _bounded(text: str, where: str, what: str, *, max_bytes: int, toml: bool) -> None:
    if len(text) > max_bytes:
        raise AuditInputError(f"{where}: {what} of {len(text):,} characters is larger than the limit of "
                              f"{max_bytes:,}")
    depth = toml_depth(text) if toml else json_depth(text)
    if depth > MAX_DEPTH:
        raise AuditInputError(f"{where}: {what} nested {depth:,} levels deep; the limit is {MAX_DEPTH}")


def toml_loads(text: str, where: str, *, what: str = "TOML") -> dict:
    """TOML text as a dict, or an `AuditInputError` naming `where` and the problem."""
    _bounded(text, where, what, max_bytes=MAX_TOML_BYTES, toml=True)
    try:
        return tomllib.loads(text)
    except (tomllib.TOMLDecodeError, RecursionError) as exc:
        raise AuditInputError(f"{where}: not valid TOML ({exc})") from None


def json_loads(text: str | bytes, where: str, *, max_bytes: int, what: str = "JSON"):
    """JSON text as plain data, or an `AuditInputError` naming `where` and the problem."""
    try:
        text = text.decode("utf-8") if isinstance(text, bytes) else text
    except UnicodeDecodeError as exc:
        raise AuditInputError(f"{where}: {what} is not UTF-8 text ({exc})") from None
    _bounded(text, where, what, max_bytes=max_bytes, toml=False)
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError is a ValueError
        raise AuditInputError(f"{where}: {what} is not valid JSON ({exc})") from None


def read_toml(path: str | Path, *, what: str) -> dict:
    """A TOML file as a dict, or an `AuditInputError` naming the file and the problem."""
    from audit._util.paths import input_file  # paths raises AuditInputError: import it late

    path = input_file(path, what)
    if path.stat().st_size > MAX_TOML_BYTES:
        raise AuditInputError(f"{path}: {what} of {path.stat().st_size:,} bytes is larger than the limit of "
                              f"{MAX_TOML_BYTES:,}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise AuditInputError(f"{path}: not valid TOML ({exc})") from None
    return toml_loads(text, str(path), what=what)
