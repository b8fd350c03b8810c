"""`Logits`: a user's module seen as the analyzers need it, model-space inputs in, logits out.

Analyzers call `model.module(x)` with one tensor in the model's input space (images NCHW in
their pixel range) and expect a (rows, classes) tensor back. Modules in the wild differ: they
return tuples, dicts or output objects with `.logits`, read channels-last images or
normalised pixels, or take extra inputs such as an attention mask. The adapter does that
translation inside the forward pass, so attributions and attacks still see pixels and
gradients flow through it unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch
from torch import nn

from audit._util.errors import AuditInputError

LAYOUTS = ("NCHW", "NHWC")


class Logits(nn.Module):
    def __init__(
        self,
        inner: nn.Module,
        *,
        layout: str = "NCHW",
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        extra_inputs: Callable[[torch.Tensor], Mapping[str, torch.Tensor]] | None = None,
    ):
        super().__init__()
        if layout not in LAYOUTS:
            raise AuditInputError(f"layout must be one of {', '.join(LAYOUTS)}, not {layout!r}")
        if (mean is None) != (std is None):
            raise AuditInputError("mean and std are given together (per-channel normalisation)")
        self.inner = inner
        self.layout = layout
        self.extra_inputs = extra_inputs
        self.padding_invariant = getattr(inner, "padding_invariant", False)
        self.normalise = mean is not None
        if self.normalise:
            std_t = torch.as_tensor(std, dtype=torch.float32)
            if not (std_t > 0).all():
                raise AuditInputError(f"std must be positive per channel, found {list(std)}")
            self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32).reshape(1, -1, 1, 1))
            self.register_buffer("std", std_t.reshape(1, -1, 1, 1))

    def __getattr__(self, name: str):
        """Attributes of the user's module read through the adapter (`model.module.fc` still works); not its
        special methods (the inner module's `__deepcopy__`, e.g. a GraphModule's, would copy it instead of us)."""
        try:
            return super().__getattr__(name)
        except AttributeError:
            if name == "inner" or name.startswith("__"):
                raise
            return getattr(self.inner, name)

    @property
    def embedding(self) -> nn.Module | None:
        """The inner module's token embedding: its `embedding`, or `get_input_embeddings()`."""
        layer = getattr(self.inner, "embedding", None)
        if layer is None and hasattr(self.inner, "get_input_embeddings"):
            layer = self.inner.get_input_embeddings()
        return layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        extra = dict(self.extra_inputs(x)) if self.extra_inputs else {}
        if self.normalise:
            x = (x - self.mean) / self.std
        if self.layout == "NHWC":
            x = x.permute(0, 2, 3, 1)
        return as_logits(self.inner(x, **extra))


def as_logits(out) -> torch.Tensor:
    """The logits tensor of a module's output: itself, `.logits`, `["logits"]`, or a tuple's first item."""
    if isinstance(out, torch.Tensor):
        return out
    if hasattr(out, "logits"):
        return out.logits
    if isinstance(out, Mapping) and "logits" in out:
        return out["logits"]
    if isinstance(out, (tuple, list)) and out and isinstance(out[0], torch.Tensor):
        return out[0]
    raise AuditInputError(f"the module returned {type(out).__name__}; expected a logits tensor, a tuple starting "
                    "with one, a dict with 'logits' or an object with `.logits`")
