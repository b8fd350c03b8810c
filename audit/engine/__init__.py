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

import numpy as np

from audit._util.errors import AuditInputError


class Engine(ABC):
    name: str

    @abstractmethod
    def map(self, fn: Callable[[Any, Any], Any], shared: Any, batches: Iterable) -> Iterator:
        """`fn(shared, batch)` for each batch, in the order of `batches`."""


    def close(self) -> None:
        """Release what the engine started (nothing for the local one)."""


class LocalEngine(Engine):
    name = "local"

    def map(self, fn, shared, batches):
        for batch in batches:
            yield fn(shared, batch)


_current: ContextVar[Engine] = ContextVar("audit_engine", default=LocalEngine())


def batch_seed(seed: int, index: int) -> int:
    """The seed of batch `index` of a map seeded with `seed`: its own stream, whatever engine runs it.
    The first batch keeps `seed`, so work that fits one batch draws what it drew before batches had seeds."""
    if index == 0:
        return seed
    return int(np.random.SeedSequence([seed % 2**63, index]).generate_state(1)[0])  # < 2**32, as numpy's seed needs


def named(name: str, *, address: str | None = None) -> Engine:
    """The engine called `name` ("local" or "ray"); `address` is an existing Ray cluster's (Ray only)."""
    if name == "local":
        if address is not None:
            raise AuditInputError("--ray-address goes with --engine ray")
        return LocalEngine()
    if name == "ray":
        from audit.engine.ray import RayEngine

        return RayEngine(address=address)
    raise AuditInputError(f"unknown engine {name!r}; expected local or ray")


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


@contextmanager
def running_on(engine: str | Engine | None, *, address: str | None = None) -> Iterator[Engine]:
    """`engine` as the current one: an Engine as it is, a name ("local", "ray") made here and closed
    afterwards, None the current engine."""
    if engine is None or isinstance(engine, Engine):
        with using(engine or current()) as chosen:
            yield chosen
        return
    made = named(engine, address=address)
    try:
        with using(made):
            yield made
    finally:
        made.close()
