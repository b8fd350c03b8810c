"""Gradient attacks on continuous inputs: FGSM and PGD under the L-infinity or L2 norm.

Perturbations live in the units of a `Domain` (pixels, or standard deviations of table
columns), touch only its movable features, and are clipped to its bounds after every
step. PGD (Madry et al., 2018) takes `steps` signed (L-inf) or normalized (L2) gradient
steps on the cross-entropy, projects back into the epsilon ball, and keeps, per example,
the first point that is misclassified over all steps and restarts.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import numpy as np
import torch
import torch.nn.functional as F

from audit import engine
from audit.engine import batch_seed
from audit._util.errors import AuditInputError
from audit.core.model import Model
from audit.core.passes import rows_per_pass
from audit.methods.robustness.domain import Domain
from audit.methods.robustness.stochastic import draw_logits, voted_correct

NORMS = ("linf", "l2")


@dataclass(frozen=True, kw_only=True)
class PGD:
    """PGD settings; `step_size` is a fraction of epsilon (Madry et al.'s 2.5 * eps / steps by default)."""

    norm: str = "linf"
    steps: int = 20
    step_size: float | None = None
    restarts: int = 1
    random_start: bool = True
    draws: int = 1

    def __post_init__(self):
        if self.norm not in NORMS:
            raise AuditInputError(f"unknown attack norm {self.norm!r}; expected one of {', '.join(NORMS)}")
        if self.steps < 1 or self.restarts < 1 or self.draws < 1:
            raise AuditInputError(f"PGD needs steps, restarts and draws >= 1, found {self.steps}, {self.restarts} "
                                  f"and {self.draws}")

    @property
    def alpha(self) -> float:
        return self.step_size if self.step_size is not None else 2.5 / self.steps


def fgsm(model: Model, x: torch.Tensor, y: torch.Tensor, eps, domain: Domain, *, norm: str = "linf",
         draws: int = 1) -> torch.Tensor:
    """One gradient step of size `eps` (a float or one per example) from `x`."""
    return in_batches(model, x, y, eps, domain, draws, partial(_fgsm_batch, norm=norm, draws=draws))


def pgd(model: Model, x: torch.Tensor, y: torch.Tensor, eps, domain: Domain, *, config: PGD = PGD(),
        seed: int = 0, start: torch.Tensor | None = None) -> torch.Tensor:
    """Adversarial examples for `x` within `eps` (a float or one per example) of it. `start` (points in
    the domain, e.g. adversarials found at a larger epsilon) replaces the first restart's random start,
    projected into the ball."""
    return in_batches(model, x, y, eps, domain, config.draws, partial(_pgd_batch, config=config), seed=seed,
                      start=start)


def in_batches(model: Model, x: torch.Tensor, y: torch.Tensor, eps, domain: Domain, draws: int,
               attack, *, seed: int = 0, start: torch.Tensor | None = None) -> torch.Tensor:
    """`attack(model, x, y, eps, domain, generator=...)` over batches, each on the model's device with a
    generator of its own seed (`batch_seed`), on the current engine; the adversarial examples on the CPU.
    With `start`, each batch's rows of it are passed on as `start=`."""
    batches = ((i, *batch) for i, batch in enumerate(_batches(model, x, y, eps, draws, start)))
    outs = list(engine.current().map(attack_batch, (model, domain, attack, seed), batches))
    return torch.cat(outs) if outs else x.clone()


def attack_batch(shared, batch) -> torch.Tensor:
    """One batch `(index, x, y, eps[, start])` of an attack `(model, domain, attack, seed)`: the map's batch
    function."""
    model, domain, attack, seed = shared
    index, x, y, eps, *start = batch
    generator = torch.Generator().manual_seed(batch_seed(seed, index))
    device = model.device
    extra = {"start": start[0].to(device)} if start else {}
    return attack(model, x.to(device), y.to(device), eps.to(device), domain.to(device), generator=generator,
                  **extra).cpu()


def _fgsm_batch(model, x, y, eps, dom: Domain, *, norm: str, draws: int, generator=None) -> torch.Tensor:
    grad = _loss_gradient(model, x, y, draws)
    return dom.clip(x + eps * dom.scale * _direction(grad * dom.scale * dom.mask, norm))


def _pgd_batch(model, x, y, eps, dom: Domain, config: PGD, generator, start=None) -> torch.Tensor:
    """PGD on one batch. An example leaves the batch once it is misclassified (the loss is a
    sum over examples, so the others' steps do not change): the work shrinks as it succeeds.
    On a random model every example takes every step."""
    best = x.clone()
    found = torch.zeros(len(x), dtype=torch.bool, device=x.device)
    for restart in range(config.restarts):
        active = torch.nonzero(~found).flatten()
        xa, ya, ea = x[active], y[active], eps[active]
        if restart == 0 and start is not None:
            u = _project((start[active] - xa) / dom.scale * dom.mask, ea, config.norm)
        elif config.random_start:
            u = _random_start(xa, ea, dom, config.norm, generator)
        else:
            u = torch.zeros_like(xa)
        adv = dom.clip(xa + u * dom.scale)
        for step in range(config.steps + 1):
            adv = adv.detach().requires_grad_(True)
            logits = draw_logits(model, adv, config.draws)
            wrong = logits[0].argmax(1) != ya if config.draws == 1 else torch.zeros_like(ya, dtype=torch.bool)
            best[active[wrong]] = adv.detach()[wrong]
            found[active[wrong]] = True
            keep = ~wrong
            if step == config.steps or not bool(keep.any()):
                best[active[keep]] = adv.detach()[keep]
                break
            grad, = torch.autograd.grad(_loss(logits[:, keep], ya[keep]), adv)
            active, xa, ya, ea, adv, grad = (t[keep] for t in (active, xa, ya, ea, adv.detach(), grad))
            u = (adv - xa) / dom.scale + config.alpha * ea * _direction(grad * dom.scale * dom.mask, config.norm)
            adv = dom.clip(xa + _project(u, ea, config.norm) * dom.scale)
        if bool(found.all()):
            break
    return best


def flip_epsilons(model: Model, x: torch.Tensor, y: torch.Tensor, grid: np.ndarray, correct: np.ndarray,
                  domain: Domain, *, config: PGD = PGD(), refine: int = 4, seed: int = 0,
                  adversarial: torch.Tensor | None = None) -> np.ndarray:
    """Smallest epsilon at which PGD flips each example (inf when no epsilon of `grid` does).

    `correct[i, k]` says whether example i was still classified correctly by PGD at
    `grid[k]` (ascending). The first flipping grid epsilon brackets the answer with the
    grid epsilon below it; `refine` bisection steps, each one PGD run at a per-example
    epsilon, narrow the bracket, and the upper end is returned. Each run starts from the
    adversarial that holds the upper end, projected into the smaller ball (`adversarial`: PGD's
    points at the first flipping grid epsilon; None: PGD's random start), so a point that stays
    adversarial there costs one forward pass.
    """
    flipped = ~correct
    first = np.where(flipped.any(axis=1), flipped.argmax(axis=1), -1)
    hit = first >= 0
    hi = np.where(hit, grid[np.maximum(first, 0)], np.inf)
    lo = np.where(first > 0, grid[np.maximum(first - 1, 0)], 0.0)
    rows = np.flatnonzero(hit & (hi > 0))
    held = adversarial[rows].clone() if adversarial is not None else None
    for i in range(refine):
        if not len(rows):
            break
        mid = (lo[rows] + hi[rows]) / 2
        adv = pgd(model, x[rows], y[rows], torch.from_numpy(mid).float(), domain, config=config, seed=seed + i,
                  start=held)
        fooled = ~voted_correct(model, adv, y[rows], config.draws)
        hi[rows] = np.where(fooled, mid, hi[rows])
        lo[rows] = np.where(fooled, lo[rows], mid)
        if held is not None:
            held[fooled] = adv[fooled]
    return hi


def _batches(model: Model, x: torch.Tensor, y: torch.Tensor, eps, draws: int = 1, points=None):
    """Batches of `batch_size / draws` examples (each runs `draws` times), fewer where their activations do not fit
    in memory (`rows_per_pass`), with one epsilon per example (and their rows of `points`, when given)."""
    eps = torch.as_tensor(eps, dtype=torch.float32)
    eps = eps.expand(len(x)) if eps.ndim == 0 else eps
    shape = (-1,) + (1,) * (x.ndim - 1)
    rows = rows_per_pass(model, x, rows=min(model.batch_size, len(x) * draws), backward=True, what="attacks")
    size = max(1, rows // draws)
    for start in range(0, len(x), size):
        part = slice(start, start + size)
        yield (x[part], y[part], eps[part].reshape(shape)) + (() if points is None else (points[part],))


def _loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Cross-entropy summed over examples and averaged over draws, from logits (draws, N, classes)."""
    return F.cross_entropy(logits.flatten(0, 1), y.repeat(len(logits)), reduction="sum") / len(logits)


def _loss_gradient(model: Model, x: torch.Tensor, y: torch.Tensor, draws: int = 1) -> torch.Tensor:
    x = x.detach().requires_grad_(True)
    grad, = torch.autograd.grad(_loss(draw_logits(model, x, draws), y), x)
    return grad


def _direction(grad: torch.Tensor, norm: str) -> torch.Tensor:
    """The steepest-ascent unit step: the sign (L-inf) or the L2-normalized gradient."""
    if norm == "linf":
        return grad.sign()
    return grad / _l2(grad).clamp(min=1e-12)


def _project(u: torch.Tensor, eps: torch.Tensor, norm: str) -> torch.Tensor:
    if norm == "linf":
        return torch.maximum(torch.minimum(u, eps), -eps)
    return u * (eps / _l2(u).clamp(min=1e-12)).clamp(max=1.0)


def _random_start(x: torch.Tensor, eps: torch.Tensor, dom: Domain, norm: str, generator) -> torch.Tensor:
    """A uniform point of the L-inf ball, or a random direction at a uniform radius of the L2 ball."""
    if norm == "linf":
        u = (torch.rand(x.shape, generator=generator) * 2 - 1).to(x.device) * eps
        return u * dom.mask
    u = torch.randn(x.shape, generator=generator).to(x.device) * dom.mask
    radius = torch.rand((len(x),) + (1,) * (x.ndim - 1), generator=generator).to(x.device)
    return u / _l2(u).clamp(min=1e-12) * radius * eps


def _l2(t: torch.Tensor) -> torch.Tensor:
    return t.flatten(1).norm(dim=1).reshape((-1,) + (1,) * (t.ndim - 1))
