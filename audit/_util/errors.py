"""Errors a user can act on.

An `AuditInputError` is bad usage or bad input: the CLI prints its message as one
line and exits 2. Its message names the file, column or value at fault and, where
there is one, the fix.
"""

import tomllib
from pathlib import Path


class AuditInputError(ValueError):
    """Bad usage or bad input (exit code 2). The message is kept to one line, whatever text from a
    file or a library it quotes."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))


class UnsafeCheckpointError(AuditInputError):
    """A checkpoint would need unpickling arbitrary objects to load."""


def read_toml(path: str | Path, *, what: str) -> dict:
    """A TOML file as a dict, or an `AuditInputError` naming the file and the problem."""
    from audit._util.paths import input_file  # paths raises AuditInputError: import it late

    path = input_file(path, what)
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise AuditInputError(f"{path}: not valid TOML ({exc})") from None
