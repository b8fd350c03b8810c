"""Activation memory of a model's passes, measured, and how many rows of a pass fit the run's memory budget.

Every pass is sized here: the model's own inference (`Model.logits`, which text SHAP and LIME score
their masked texts with), the gradient attributions, SHAP's explainers, LIME's image scoring and the
attacks ask `rows_per_pass` how many rows (examples x steps, perturbations or samples) one forward
pass, or forward and backward pass, may hold; work whose rows are other arrays (LIME's surrogate fits, the
text explainers' masked texts) asks `rows_that_fit` with its own bytes per row. Two numbers per row are measured
on the rows the pass will read, by running the model on two of them and on one (what does not grow with rows,
such as the weights, cancels):
- forward: the most bytes of tensors alive at once in an inference pass (every operator's output is
  followed until it is freed), plus the input row itself;
- backward: the bytes the autograd graph keeps for the backward pass (`saved_tensors_hooks`), with
  gradients from the input (text: from the token embedding) as the attributions and attacks take them.
A 6-layer BERT keeps 74 MB per row of 256 subwords (benchmarks/attribution_memory.py); a ResNet-18 on
3x64x64 images 1.7 MB (in inference, 0.55 MB at most at once); the reference models 0.2-73 KB.

Two bounds apply. PASS_BYTES: no pass holds more measured bytes, budget or not (a larger pass is no
faster per row; the reference models' passes are not bound by it, so their numbers are as they were). The budget
(`audit._util.memory`): a pass takes at most the room left under it, divided by PEAK_FACTOR, since the
real peak of a pass (gradient buffers, the libraries' copies, the allocator) is a few times what it
measures (benchmarks/memory_bound.py). On a GPU the activations take the device's memory: a pass there also
fits the device's free memory (with what torch's allocator holds unused). Where a bound other than PASS_BYTES
binds, the pass shrinks and `note` says so.
"""

from __future__ import annotations

import contextlib
import weakref
from typing import TYPE_CHECKING

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from audit._util.memory import budget, headroom, note
from audit._util.paths import format_size

if TYPE_CHECKING:
    from audit.core.model import Model

PASS_BYTES = 2**29
#: Bytes per row by module, measured once per input shape: an attack sizes each of its many calls.
_measured: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
#: Above the real peak of a pass over the bytes it is sized by (benchmarks/memory_bound.py --calibrate, ResNet-18:
#: 1.1-1.5 for a gradient pass, 2.3-2.4 for shap's DeepExplainer, 1.35 for its GradientExplainer, 0.9 for inference).
PEAK_FACTOR = 3


def rows_per_pass(model: Model, x: torch.Tensor, *, rows: int, backward: bool, what: str) -> int:
    """How many rows of model-space inputs like `x` one pass of `what` may hold: `rows` (what the caller would
    run), fewer where a pass would exceed PASS_BYTES or the room left in the memory budget; at least 1."""
    if not len(x):
        return rows
    return rows_that_fit(activation_bytes(model, x, backward=backward), rows=rows, what=what, device=model.device)


def rows_that_fit(per_row: int, *, rows: int, what: str, device: torch.device | None = None) -> int:
    """How many rows of `per_row` bytes one pass of `what` may hold: at most `rows` and PASS_BYTES, and what
    fits the room left in the memory budget (and on a GPU `device`, its free memory); at least 1."""
    per_row = max(1, per_row)
    fast = max(1, min(rows, PASS_BYTES // per_row))
    fits = max(1, headroom() // (PEAK_FACTOR * per_row))
    if fits < fast:
        note(f"{what}: passes of {fits:,} rows instead of {fast:,} ({format_size(per_row)} per row), "
             f"to stay within the memory budget of {format_size(budget())}")
    room = None if device is None else device_room(device)
    on_device = fits if room is None else max(1, room // (PEAK_FACTOR * per_row))
    if on_device < min(fast, fits):
        note(f"{what}: passes of {on_device:,} rows instead of {min(fast, fits):,} ({format_size(per_row)} per "
             f"row), to fit the free memory of {device}")
    return min(fast, fits, on_device)


def device_room(device: torch.device) -> int | None:
    """Bytes a pass may still take on a GPU: its free memory and what torch's allocator holds unused (None on
    the CPU, where the budget is the bound)."""
    if device.type != "cuda":
        return None
    free, _ = torch.cuda.mem_get_info(device)
    return free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)


def activation_bytes(model: Model, x: torch.Tensor, *, backward: bool) -> int:
    """Bytes per row of `x` that a pass keeps for the backward pass (`backward`), else the most it holds at once
    in inference; measured on the widest row (text: the longest text, without trailing padding, read as
    `measured_width` columns wide)."""
    widest = model.without_padding(x)[:1]
    if widest.shape[1:] != x.shape[1:]:  # text without its trailing padding
        widest = x[:1, : measured_width(widest.shape[1], x.shape[1])]
    widest = widest.to(model.device)
    known = _measured.setdefault(model.module, {})
    key = (backward, tuple(widest.shape), widest.dtype, widest.device)
    if key not in known:
        measure = _saved_bytes if backward else _live_bytes
        # Measured once per module: a model random at inference must draw the same numbers on every run after.
        with torch.random.fork_rng(devices=[widest.device] if widest.device.type == "cuda" else []):
            known[key] = measure(model, torch.cat([widest, widest])) - measure(model, widest)
    return known[key]


def measured_width(width: int, padded: int) -> int:
    """The width texts of `width` token columns are measured at: the next power of two, at most the `padded`
    width, so that a model's passes over texts of every length take a few measurements, not one per length."""
    return min(padded, 1 << max(0, width - 1).bit_length())


def _saved_bytes(model: Model, x: torch.Tensor) -> int:
    storages: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    if model.modality == "text":
        hooks = [model.embedding.register_forward_hook(lambda m, a, out: out.detach().requires_grad_())] \
            if model.embedding is not None else []
    else:
        x, hooks = x.clone().requires_grad_(), []
    try:
        with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), \
                gradients_in_eval(model):
            model.module(x)
    finally:
        for hook in hooks:
            hook.remove()
    return sum(storages.values())


class _LiveTensors(TorchDispatchMode):
    """Follows every operator's output storage until no tensor holds it, and the most bytes alive at once."""

    def __init__(self):
        super().__init__()
        self.alive: dict[int, tuple[int, set[int]]] = {}  # storage address -> (bytes, ids of its tensors)
        self.now = self.peak = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_leaves(out):
            if isinstance(t, torch.Tensor) and t.device.type != "meta":
                self._follow(t)
        self.peak = max(self.peak, self.now)
        return out

    def _follow(self, t: torch.Tensor) -> None:
        storage = t.untyped_storage()
        address, key = storage.data_ptr(), id(t)
        size, holders = self.alive.setdefault(address, (storage.nbytes(), set()))
        if not holders:
            self.now += size
        if key not in holders:
            holders.add(key)
            weakref.finalize(t, self._free, address, key)

    def _free(self, address: int, key: int) -> None:
        size, holders = self.alive.get(address, (0, set()))
        holders.discard(key)
        if not holders and address in self.alive:
            del self.alive[address]
            self.now -= size


def _live_bytes(model: Model, x: torch.Tensor) -> int:
    with torch.inference_mode(), _LiveTensors() as live:
        model.module(x)
    return live.peak + x.nbytes


def gradients_in_eval(model: Model):
    """cuDNN's RNN backward refuses eval mode; the native kernels give the same gradients."""
    if model.modality == "text" and model.device.type == "cuda":
        return torch.backends.cudnn.flags(enabled=False)
    return contextlib.nullcontext()

