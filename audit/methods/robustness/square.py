"""Square Attack: a gradient-free attack, the check on the gradient attacks.

Andriushchenko et al. (2020), "Square Attack: a query-efficient black-box adversarial
attack via random search", L-infinity version with the margin loss (true logit minus the
best other logit). Start at vertical stripes of +-epsilon; then, each query, redraw the
perturbation inside one random square of side round(sqrt(p * H * W)) to a vertex of the
ball (one random sign per channel) and keep the change for the examples whose margin went
down. The share p of the image a square covers starts at `p_init` and halves at the
paper's query counts (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000 of 10,000), rescaled
to the query budget as in AutoAttack; AutoAttack's settings are p_init 0.8 and 5,000
queries. Each example gets its own square and signs (the reference implementations draw
one per batch), and leaves the batch once it is misclassified. A proposal that would move no
feature (its signs those already there, or clipped away at the bounds) gets new signs before
it is queried, as the reference code does, rather than spend a query on the point it has.

Tables have no squares: the window is a random share p of the movable features, each
redrawn to a random sign. Under L2 the window is redrawn in a random direction and the
perturbation rescaled back onto the sphere (a random search on the schedule above, not
the paper's L2 update).

It reads only the model's outputs, so a masked, rounded or saturated gradient does not
weaken it. On a random model the margin is that of the logits averaged over `draws`
forward passes.
"""

from __future__ import annotations

import math
from functools import partial

import torch

from audit.core.model import Model
from audit.methods.robustness.attacks import in_batches
from audit.methods.robustness.domain import Domain
from audit.methods.robustness.stochastic import draw_logits

P_INIT = 0.8
QUERIES = 5000
_HALVINGS = (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000)  # of 10,000 queries
REDRAWS = 100  # new values for a window that moves no feature (a movable one moves with odds 1/2 or more a draw)


def square_attack(model: Model, x: torch.Tensor, y: torch.Tensor, eps: float, domain: Domain, *,
                  norm: str = "linf", queries: int = QUERIES, p_init: float = P_INIT, draws: int = 1,
                  seed: int = 0) -> torch.Tensor:
    """Adversarial examples for `x` within `eps` of it, after at most `queries` forward passes per example."""
    attack = partial(_square_at, radius=eps, norm=norm, queries=queries, p_init=p_init, draws=draws)
    return in_batches(model, x, y, eps, domain, draws, attack, seed=seed)


def _square_at(model, x, y, _eps, dom: Domain, *, radius: float, norm, queries, p_init, draws, generator):
    """A batch of `in_batches` (which passes one epsilon per example) at the one float epsilon `radius`."""
    return _square_batch(model, x, y, radius, dom, norm, queries, p_init, draws, generator)


def p_schedule(query: int, queries: int, p_init: float = P_INIT) -> float:
    """Share of the features a square covers at `query` of `queries` (the paper's schedule, rescaled)."""
    scaled = int(query / queries * 10000)
    return p_init / 2 ** sum(scaled > h for h in _HALVINGS)


def _square_batch(model, x, y, eps, dom: Domain, norm, queries, p_init, draws, generator) -> torch.Tensor:
    u = _start(x.shape, eps, dom, norm, generator).to(x.device)
    adv = dom.clip(x + u * dom.scale)
    margin = _margin(model, adv, y, draws)
    for query in range(queries):
        active = torch.nonzero(margin > 0).flatten()
        if not len(active):
            break
        p = p_schedule(query, queries, p_init)
        window, values = _window(x[active].shape, p, dom, norm, generator)
        window = window.to(x.device)
        proposal, candidate = _moved(x[active], u[active], window, _fresh(values, eps, norm, generator), eps, dom,
                                     norm)
        for _ in range(REDRAWS):  # as the reference code: a proposal that moves no feature would waste the query
            same = torch.nonzero((candidate == adv[active]).flatten(1).all(1)).flatten()
            if not len(same):
                break
            rows = active[same]
            proposal[same], candidate[same] = _moved(x[rows], u[rows], window[same],
                                                     _fresh((len(same),) + values[1:], eps, norm, generator), eps,
                                                     dom, norm)
        new_margin = _margin(model, candidate, y[active], draws)
        better = new_margin < margin[active]
        chosen = active[better]
        u[chosen], adv[chosen], margin[chosen] = proposal[better], candidate[better], new_margin[better]
    return adv


def _margin(model: Model, x: torch.Tensor, y: torch.Tensor, draws: int) -> torch.Tensor:
    with torch.inference_mode():
        logits = draw_logits(model, x, draws).float().mean(0)
    true = logits.gather(1, y[:, None]).squeeze(1)
    others = logits.scatter(1, y[:, None], -torch.inf).max(dim=1).values
    return true - others


def _signs(shape, generator) -> torch.Tensor:
    return torch.randint(0, 2, shape, generator=generator).float() * 2 - 1


def _start(shape, eps, dom: Domain, norm, generator) -> torch.Tensor:
    """Vertical stripes of +-eps (images, L-inf), else a random vertex or direction, on the movable features."""
    mask = dom.mask.cpu()
    if norm == "l2":
        u = torch.randn(shape, generator=generator) * mask
        return u * (eps / _l2(u).clamp(min=1e-12))
    if len(shape) == 4:
        return _signs((shape[0], shape[1], 1, shape[3]), generator) * eps * mask
    return _signs(shape, generator) * eps * mask


def _window(shape, p: float, dom: Domain, norm, generator) -> tuple[torch.Tensor, tuple[int, ...]]:
    """Per example, which features to redraw (a square of a share p of the image, or a share p of the movable
    features of a table), and the shape of the values to draw for them (one per channel of an L-inf square)."""
    n = shape[0]
    mask = dom.mask.cpu().bool()
    if len(shape) == 4:
        _, c, h, w = shape
        side = min(h, w, max(1, round(math.sqrt(p * h * w))))
        top = torch.randint(0, h - side + 1, (n, 1), generator=generator)
        left = torch.randint(0, w - side + 1, (n, 1), generator=generator)
        rows, cols = torch.arange(h)[None], torch.arange(w)[None]
        in_rows, in_cols = (rows >= top) & (rows < top + side), (cols >= left) & (cols < left + side)
        window = (in_rows[:, :, None] & in_cols[:, None, :])[:, None] & mask
        return window, (n, c, 1, 1) if norm == "linf" else tuple(shape)
    movable = int(mask.sum())
    k = max(1, round(p * movable))
    scores = torch.rand(shape, generator=generator).masked_fill(~mask, 2.0)  # the k smallest are movable
    window = scores <= scores.flatten(1).kthvalue(k, dim=1).values.reshape((-1,) + (1,) * (len(shape) - 1))
    return window & mask, tuple(shape)


def _fresh(values: tuple[int, ...], eps, norm, generator) -> torch.Tensor:
    """New values for a window (in the domain's units): a vertex of the ball, or under L2 a random direction."""
    if norm == "l2":
        return torch.randn(values, generator=generator) * eps
    return _signs(values, generator) * eps


def _moved(x, u, window, fresh, eps, dom: Domain, norm) -> tuple[torch.Tensor, torch.Tensor]:
    """The perturbation `u` with `window` redrawn to `fresh` (back onto the sphere under L2), and its point."""
    proposal = torch.where(window, fresh.to(x.device), u)
    if norm == "l2":
        proposal = proposal * (eps / _l2(proposal).clamp(min=1e-12))
    return proposal, dom.clip(x + proposal * dom.scale)


def _l2(t: torch.Tensor) -> torch.Tensor:
    return t.flatten(1).norm(dim=1).reshape((-1,) + (1,) * (t.ndim - 1))
