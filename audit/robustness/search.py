"""A gradient-free attack: random search in the style of the Square attack.

Andriushchenko et al. (2020), "Square Attack: a query-efficient black-box adversarial
attack via random search". Start at a random vertex of the epsilon ball, then, each
iteration, redraw the perturbation on a random window (a square of pixels for images, a
random subset of the movable features for tables) and keep the change for the examples
whose margin (true logit minus the best other logit) went down. It reads only the
model's outputs, so a masked or broken gradient does not weaken it; that is why the
sanity check compares it with PGD.
"""

from __future__ import annotations

import math

import torch

from audit.model import Model
from audit.robustness.domain import Domain


def square_search(model: Model, x: torch.Tensor, y: torch.Tensor, eps: float, domain: Domain, *,
                  norm: str = "linf", iterations: int = 100, seed: int = 0) -> torch.Tensor:
    """Adversarial examples found by `iterations` rounds of random search (one forward pass each)."""
    generator = torch.Generator().manual_seed(seed)
    dom = domain.to(model.device)
    outs = []
    for start in range(0, len(x), model.batch_size):
        xb = x[start : start + model.batch_size].to(model.device)
        yb = y[start : start + model.batch_size].to(model.device)
        outs.append(_search_batch(model, xb, yb, eps, dom, norm, iterations, generator).cpu())
    return torch.cat(outs)


def _search_batch(model, x, y, eps, dom: Domain, norm, iterations, generator) -> torch.Tensor:
    u = _vertex(x.shape, eps, dom, norm, generator, x.device)
    adv = dom.clip(x + u * dom.scale)
    margin = _margin(model, adv, y)
    for i in range(iterations):
        if bool((margin < 0).all()):
            break
        window = _window(x.shape, _fraction(i, iterations), dom, generator).to(x.device)
        fresh = _vertex(x.shape, eps, dom, norm, generator, x.device)
        proposal = torch.where(window, fresh, (adv - x) / dom.scale)
        if norm == "l2":
            proposal = proposal * (eps / proposal.flatten(1).norm(dim=1).clamp(min=1e-12)).reshape(
                (-1,) + (1,) * (x.ndim - 1))
        candidate = dom.clip(x + proposal * dom.scale)
        new_margin = _margin(model, candidate, y)
        better = (new_margin < margin) & (margin >= 0)
        adv[better] = candidate[better]
        margin = torch.where(better, new_margin, margin)
    return adv


def _margin(model: Model, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        logits = model.module(x).float()
    true = logits.gather(1, y[:, None]).squeeze(1)
    others = logits.scatter(1, y[:, None], -torch.inf).max(dim=1).values
    return true - others


def _vertex(shape, eps, dom: Domain, norm, generator, device) -> torch.Tensor:
    """A random point on the sphere of the ball: random signs (L-inf) or a random direction (L2)."""
    if norm == "linf":
        signs = torch.randint(0, 2, shape, generator=generator).float() * 2 - 1
        return signs.to(device) * eps * dom.mask
    u = torch.randn(shape, generator=generator).to(device) * dom.mask
    return u * eps / u.flatten(1).norm(dim=1).clamp(min=1e-12).reshape((-1,) + (1,) * (len(shape) - 1))


def _fraction(i: int, iterations: int) -> float:
    """Share of the features redrawn at iteration i: large windows first, small ones later."""
    return max(0.05, 0.5 * (1 - i / iterations) ** 2)


def _window(shape, fraction: float, dom: Domain, generator) -> torch.Tensor:
    """Which features to redraw: one square of `fraction` of the image area, or that share of movable features."""
    if len(shape) == 4:
        _, _, h, w = shape
        side = min(h, w, max(1, round(math.sqrt(fraction * h * w))))
        top = int(torch.randint(0, h - side + 1, (1,), generator=generator))
        left = int(torch.randint(0, w - side + 1, (1,), generator=generator))
        window = torch.zeros(shape[1:], dtype=torch.bool)
        window[:, top : top + side, left : left + side] = True
        return window
    movable = torch.nonzero(dom.mask.cpu().reshape(-1) > 0).flatten()
    k = max(1, round(fraction * len(movable)))
    chosen = movable[torch.randperm(len(movable), generator=generator)[:k]]
    window = torch.zeros(shape[1:], dtype=torch.bool).reshape(-1)
    window[chosen] = True
    return window.reshape(shape[1:])
