"""The Ray engine (`--engine ray`): each batch of a map is one Ray task.

`shared` (the model, the config, the seed) goes into Ray's object store once and every task
reads it from there; the batches travel as the tasks' arguments, and the results come back in
the order of the batches. A task runs with as many torch threads as this process uses (and asks
Ray for as many CPUs), because a sum split over another number of threads can round differently:
so the numbers are those of the local engine to the last digit.

A map of a single batch runs in this process: a task would only add its overhead. Ray is an
optional dependency (`pip install "torch-model-audit[ray]"`), imported on the first map.
"""

from __future__ import annotations

import logging
from collections import Counter, deque

from audit.engine import Engine
from audit._util.distribution import install_hint
from audit._util.errors import AuditInputError

IN_FLIGHT_PER_CPU = 2  # tasks submitted ahead of the one whose result is awaited, per CPU of the cluster
SHARED_KEPT = 8  # object-store copies of recent `shared` values, reused by the maps that pass them again


def _ray():
    try:
        import ray
    except ImportError:
        raise AuditInputError(f"--engine ray needs Ray: {install_hint('ray')}") from None
    return ray


_threads: list[int] = []  # the threads this worker process was set to


def run_batch(fn, shared, batch, threads: int):
    """One task: `fn(shared, batch)` with the caller's torch and BLAS threads."""
    if _threads != [threads]:
        from audit._util.threads import configure_threads

        configure_threads(threads)
        _threads[:] = [threads]
    return fn(shared, batch)


def compact(batch):
    """`batch` with every torch tensor that views a larger storage copied: pickling a view sends its whole
    storage (a slice of the data would carry all of it)."""
    import torch

    if isinstance(batch, torch.Tensor):
        whole = batch.untyped_storage().nbytes()
        return batch.clone() if whole > batch.numel() * batch.element_size() else batch
    if isinstance(batch, (tuple, list)):
        return type(batch)(compact(part) for part in batch)
    return batch


def _result(ray, ref):
    """A task's result; a task's exception as itself (an AuditInputError stays one line, not Ray's traceback)."""
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as exc:
        if isinstance(exc.cause, Exception):
            raise exc.cause from exc
        raise


class RayEngine(Engine):
    """Batches as Ray tasks on the cluster at `address`, else on a Ray started here (and shut down by `close`)
    with `num_cpus` CPUs (default: all of the machine's)."""

    name = "ray"

    def __init__(self, address: str | None = None, *, num_cpus: int | None = None):
        self.address = address
        self.num_cpus = num_cpus
        self.tasks: Counter[str] = Counter()  # tasks sent, per batch function
        self._started = False
        self._remote = None
        self._shared: dict[int, tuple[object, object]] = {}

    def map(self, fn, shared, batches):
        batches = list(batches)
        if len(batches) <= 1:
            yield from (fn(shared, batch) for batch in batches)
            return
        import torch

        ray = self._connect()
        ref = self._put(ray, shared)
        threads = torch.get_num_threads()
        ahead = max(IN_FLIGHT_PER_CPU * int(ray.cluster_resources().get("CPU", 1)), 2)
        task = self._remote.options(num_cpus=threads)
        pending: deque = deque()
        for batch in batches:
            pending.append(task.remote(fn, ref, compact(batch), threads))
            self.tasks[fn.__qualname__] += 1
            if len(pending) >= ahead:
                yield _result(ray, pending.popleft())
        while pending:
            yield _result(ray, pending.popleft())

    def close(self) -> None:
        self._shared.clear()
        if self._started:
            _ray().shutdown()
            self._started = False

    def _connect(self):
        ray = _ray()
        if not ray.is_initialized():
            from audit._util.threads import prepare_environment

            prepare_environment()  # workers inherit this process's environment: sleeping OpenMP threads
            ray.init(address=self.address, num_cpus=None if self.address else self.num_cpus,
                     include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR,
                     configure_logging=True)
            self._started = True
        if self._remote is None:
            self._remote = ray.remote(run_batch)
        return ray

    def _put(self, ray, shared):
        """The object-store copy of `shared`, put once while this engine keeps it (by identity)."""
        kept = self._shared.get(id(shared))
        if kept is not None and kept[0] is shared:
            return kept[1]
        ref = ray.put(shared)
        self._shared[id(shared)] = (shared, ref)
        while len(self._shared) > SHARED_KEPT:
            del self._shared[next(iter(self._shared))]
        return ref
