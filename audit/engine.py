"""Where the batch work of an audit runs: in this process, or on Ray.

Per-example work is a map of a pure function over batches, `fn(shared, batch)`: `shared` is what
every batch needs (the model, the config, the seed) and is sent once; each batch travels on its
own. The local engine runs the map here, in order. Another engine (`--engine ray`) runs the same
function elsewhere and gives the results back in the order of the batches, so the numbers do not
depend on where they were computed.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any


class Engine(ABC):
    name: str

    @abstractmethod
    def map(self, fn: Callable[[Any, Any], Any], shared: Any, batches: Iterable) -> Iterator:
        """`fn(shared, batch)` for each batch, in the order of `batches`."""


class LocalEngine(Engine):
    name = "local"

    def map(self, fn, shared, batches):
        for batch in batches:
            yield fn(shared, batch)


_current: ContextVar[Engine] = ContextVar("audit_engine", default=LocalEngine())


def current() -> Engine:
    """The engine of the running audit (the local one unless `using` says otherwise)."""
    return _current.get()


@contextmanager
def using(engine: Engine) -> Iterator[Engine]:
    token = _current.set(engine)
    try:
        yield engine
    finally:
        _current.reset(token)
