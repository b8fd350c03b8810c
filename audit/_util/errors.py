"""Errors a user can act on.

An `AuditInputError` is bad usage or bad input: the CLI prints its message as one
line and exits 2. Its message names the file, column or value at fault and, where
there is one, the fix.
"""


class AuditInputError(ValueError):
    """Bad usage or bad input (exit code 2). The message is kept to one line, whatever text from a
    file or a library it quotes."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))


class UnsafeCheckpointError(AuditInputError):
    """A checkpoint would need unpickling arbitrary objects to load."""

