"""Models whose output is random (noise, dropout or a random transform at inference).

A random model hides its gradient behind the noise: one draw's gradient points the wrong
way, and a point that one draw misclassifies may be classified correctly by the next.
Athalye et al. (2018), "Obfuscated Gradients Give a False Sense of Security", attack such
models with expectation over transformation (EOT): the loss, and so its gradient, is
averaged over several draws. Whether a point is classified correctly is decided by a fixed
vote: the majority of `draws` fresh forward passes.
"""

from __future__ import annotations

import numpy as np
import torch

from audit.core.model import Model
from audit.core.passes import rows_per_pass

CHECK_PASSES = 3
CHECK_ROWS = 8  # a model random at inference (noise, dropout, a random transform) shows it on any input


def is_stochastic(model: Model, x: torch.Tensor) -> bool:
    """Whether repeated forward passes over the same inputs (the first CHECK_ROWS of `x`) give different logits."""
    x = x[:CHECK_ROWS]
    first = model.logits(x)
    return any(not torch.allclose(first, model.logits(x), rtol=1e-4, atol=1e-5) for _ in range(CHECK_PASSES - 1))


def draw_logits(model: Model, x: torch.Tensor, draws: int) -> torch.Tensor:
    """Logits of `draws` forward passes over a batch already on the model's device, (draws, N, classes):
    the batch is repeated `draws` times and run as one."""
    if draws == 1:
        return model.module(x)[None]
    return model.module(x.repeat(draws, *(1,) * (x.ndim - 1))).reshape(draws, len(x), -1)


def voted_correct(model: Model, x: torch.Tensor, y: torch.Tensor, draws: int) -> np.ndarray:
    """Per example, whether the majority of `draws` forward passes classify it correctly."""
    votes = torch.zeros(len(x))
    size = max(1, rows_per_pass(model, x, rows=model.batch_size * draws, backward=False, what="votes") // draws)
    with torch.inference_mode():
        for start in range(0, len(x), size):
            xb = x[start : start + size].to(model.device)
            predicted = draw_logits(model, xb, draws).argmax(-1).cpu()
            votes[start : start + len(xb)] = (predicted == y[start : start + len(xb)]).float().sum(0)
    return (votes > draws / 2).numpy()
