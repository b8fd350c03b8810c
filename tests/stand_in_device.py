"""A stand-in for a GPU on a CPU-only torch: tensors on the `meta` device that hold real CPU data.

`on_another_device()` makes torch behave, for the code under it, as if `meta` were a second device such as
CUDA: `.to("meta")`, `torch.zeros(..., device="meta")` and every operator on such tensors compute on their
CPU data and give `meta` tensors; `.cpu()` / `.to("cpu")` give the data back; and an operator that mixes a
`meta` tensor with a CPU tensor (other than a CPU scalar, an index, or a copy between the two, as CUDA
allows) raises CUDA's "Expected all tensors to be on the same device", as does `.numpy()` of a `meta` tensor.
Random draws on the device come from a stream of their own, as CUDA's generator is not the CPU's: work that
must give the same numbers on any device draws on the CPU. A pass that runs on the CPU where the model's
device was asked for therefore fails, and what runs on the "device" gives the CPU's numbers to the last bit
(the same CPU kernels), which a test can hold equal.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves, tree_map

DEVICE = torch.device("meta")
aten = torch.ops.aten
#: Operators CUDA runs with a CPU tensor beside a device one: indexing with CPU indices, copies between devices.
_draws = np.random.RandomState(0)  # the device's own stream of random numbers
MIXED = {aten.index, aten.index_put_, aten.index_put, aten._index_put_impl_, aten.copy_, aten._to_copy, aten.to}


class OnDevice(torch.Tensor):
    """A tensor that says it is on DEVICE and holds `data`, a CPU tensor."""

    @staticmethod
    def __new__(cls, data: torch.Tensor):
        return torch.Tensor._make_wrapper_subclass(cls, data.size(), strides=data.stride(), dtype=data.dtype,
                                                   device=DEVICE, requires_grad=data.requires_grad,
                                                   storage_offset=data.storage_offset())

    def __init__(self, data: torch.Tensor):
        self.data_on_cpu = data

    def __repr__(self) -> str:
        return f"OnDevice({self.data_on_cpu!r})"

    def tolist(self):  # CUDA's tolist copies to the host; a subclass's is refused by torch
        return self.cpu().tolist()

    @classmethod
    def __torch_dispatch__(cls, func, types, args=(), kwargs=None):
        return _run(func, args, kwargs or {})


def _device_type(value) -> str | None:
    return torch.device(value).type if isinstance(value, (str, torch.device)) else None


def _run(func, args, kwargs):
    given = {**dict(zip((a.name for a in func._schema.arguments), args)), **kwargs}
    target = _device_type(given.get("device"))
    leaves = [t for t in tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)]
    ours = [t for t in leaves if isinstance(t, OnDevice)]
    if any(t.device == DEVICE and not isinstance(t, OnDevice) for t in leaves):
        raise RuntimeError(f"{func}: a meta tensor without data (made where the dispatcher does not see it)")
    if not ours and target != DEVICE.type:
        return func(*args, **kwargs)
    if ours and func.overloadpacket not in MIXED and any(t.dim() > 0 and not isinstance(t, OnDevice) for t in leaves):
        raise RuntimeError(f"Expected all tensors to be on the same device, but found at least two devices, "
                           f"{DEVICE.type} and cpu! ({func})")
    data = lambda t: t.data_on_cpu if isinstance(t, OnDevice) else t  # noqa: E731
    cpu = lambda v: torch.device("cpu") if _device_type(v) == DEVICE.type else v  # noqa: E731
    args = tuple(cpu(a) if _device_type(a) else a for a in tree_map(data, args))
    kwargs = {k: cpu(v) if k == "device" else v for k, v in tree_map(data, kwargs).items()}
    if torch.Tag.nondeterministic_seeded in func.tags:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(_draws.randint(2**31))
            out = func(*args, **kwargs)
    else:
        out = func(*args, **kwargs)
    if func.overloadpacket in (aten._to_copy, aten.to) and target == "cpu":
        return out
    if func._schema.name.endswith("_"):  # in place: the tensor it was given
        return given["self"]
    with torch.inference_mode(False):  # a view of a tensor made outside inference mode is no inference tensor
        return tree_map(lambda t: OnDevice(t) if isinstance(t, torch.Tensor) else t, out)


class _Operators(TorchDispatchMode):
    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        return _run(func, args, kwargs or {})


class _Factories(TorchFunctionMode):
    """What torch does without the dispatcher: `torch.tensor(data, device=...)` and a list index (made into a
    tensor on the indexed tensor's device) are made on the CPU here (CUDA takes CPU indices)."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in (torch.tensor, torch.as_tensor, torch.Tensor.new_tensor) and \
                _device_type(kwargs.get("device")) == DEVICE.type:
            return func(*args, **{**kwargs, "device": "cpu"}).to(DEVICE)
        if func in (torch.Tensor.__getitem__, torch.Tensor.__setitem__) and isinstance(args[0], OnDevice):
            lists = lambda i: torch.tensor(i) if isinstance(i, list) else i  # noqa: E731
            index = tuple(map(lists, args[1])) if isinstance(args[1], tuple) else lists(args[1])
            args = (args[0], index, *args[2:])
        return func(*args, **kwargs)


@contextlib.contextmanager
def on_another_device() -> Iterator[torch.device]:
    """Inside, DEVICE behaves as a second device (see the module's text); yields it."""
    with _Factories(), _Operators():
        yield DEVICE
