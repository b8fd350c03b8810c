"""APGD: PGD that sets its own step size, with the cross-entropy, DLR or targeted DLR loss.

Croce & Hein (2020), "Reliable evaluation of adversarial robustness with an ensemble of
diverse parameter-free attacks" (the attacks AutoAttack runs first). Each step moves by the
step size along the sign (L-inf) or the normalized gradient (L2), projects into the epsilon
ball and the domain, then mixes in momentum 0.75 of the previous move. The step size starts
at 2 epsilon; at checkpoints (after 22% of the steps, then ever closer, by 3% of the steps,
down to 6%) it halves for the examples whose loss rose on at most `rho` of the steps since
the last checkpoint, or whose best loss did not improve when the step was not halved the
time before, and they restart from their best point.

The DLR loss (difference of logits ratio) is the margin of the true class over the best
other class divided by the spread of the top logits, so it is unchanged when the logits are
scaled or shifted: a saturated softmax, whose cross-entropy gradient vanishes, does not hide
the direction from it. The targeted variant (APGD-T) runs once per target, the `targets`
most likely wrong classes in turn, each on the examples no earlier target broke. Models with
fewer than three (DLR) or four (targeted DLR) classes lack the logits the ratio divides by,
and use the plain margin.

The work is in a `Domain`'s units, as PGD's; an example leaves the batch once it is
misclassified (it is broken; its adversarial point is kept), which shrinks the work. A model
that is random at inference is attacked with the loss averaged over `draws` passes, and its
best-loss point is returned for the analyzer's vote.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import torch
import torch.nn.functional as F

from audit._util.errors import AuditInputError
from audit.core.model import Model
from audit.methods.robustness.attacks import NORMS, _direction, _project, _random_start, in_batches
from audit.methods.robustness.domain import Domain
from audit.methods.robustness.stochastic import draw_logits

LOSSES = ("ce", "dlr")
MOMENTUM = 0.75


@dataclass(frozen=True, kw_only=True)
class APGD:
    """APGD settings. `targets` 0 runs the untargeted attack on `loss`; k > 0 runs APGD-T (targeted DLR)
    against each of the k most likely wrong classes. AutoAttack's standard run: 100 steps, 1 restart, 9 targets."""

    norm: str = "linf"
    steps: int = 100
    loss: str = "ce"
    targets: int = 0
    restarts: int = 1
    rho: float = 0.75
    draws: int = 1

    def __post_init__(self):
        if self.norm not in NORMS:
            raise AuditInputError(f"unknown attack norm {self.norm!r}; expected one of {', '.join(NORMS)}")
        if self.loss not in LOSSES:
            raise AuditInputError(f"unknown APGD loss {self.loss!r}; expected one of {', '.join(LOSSES)}")
        if self.steps < 1 or self.restarts < 1 or self.draws < 1 or self.targets < 0:
            raise AuditInputError(f"APGD needs steps, restarts and draws >= 1 and targets >= 0, found {self.steps}, "
                                  f"{self.restarts}, {self.draws} and {self.targets}")


def apgd(model: Model, x: torch.Tensor, y: torch.Tensor, eps, domain: Domain, *, config: APGD = APGD(),
         seed: int = 0) -> torch.Tensor:
    """Adversarial examples for `x` within `eps` (a float or one per example) of it."""
    return in_batches(model, x, y, eps, domain, config.draws, partial(_apgd_batch, config=config), seed=seed)


def checkpoints(steps: int) -> list[int]:
    """The steps after which the step size is checked: the first after 22% of the steps, each next one
    3% of the steps sooner than the one before, never sooner than 6%."""
    first, shrink, least = max(int(0.22 * steps), 1), max(int(0.03 * steps), 1), max(int(0.06 * steps), 1)
    points, gap, at = [], first, first
    while at <= steps:
        points.append(at)
        gap = max(gap - shrink, least)
        at += gap
    return points


def _apgd_batch(model, x, y, eps, dom: Domain, config: APGD, generator) -> torch.Tensor:
    best = x.clone()
    found = torch.zeros(len(x), dtype=torch.bool, device=x.device)
    classes = int(draw_logits(model, x[:1], 1).shape[-1])
    ranks = range(2, min(config.targets, classes - 1) + 2) if config.targets else [None]
    for rank in ranks:
        for _ in range(config.restarts):
            active = torch.nonzero(~found).flatten()
            if not len(active):
                return best
            points, wrong = _run(model, x[active], y[active], eps[active], dom, config, rank, generator)
            best[active] = points
            found[active] = wrong
    return best


def _run(model, x, y, eps, dom: Domain, config: APGD, rank: int | None, generator):
    """One APGD run: per example, a misclassified point if one was met (and True), else its best-loss point."""
    n = len(x)
    index = torch.arange(n, device=x.device)
    out, wrong_out = x.clone(), torch.zeros(n, dtype=torch.bool, device=x.device)
    target = None
    if rank is not None:
        with torch.no_grad():
            target = draw_logits(model, x, config.draws).mean(0).argsort(dim=1)[:, -rank]
    adv = dom.clip(x + _random_start(x, eps, dom, config.norm, generator) * dom.scale)
    loss, grad, wrong = _loss_and_gradient(model, adv, y, target, config)
    step = 2.0 * eps.expand(n, *eps.shape[1:]).clone()
    best_loss, best_point, best_grad = loss, adv, grad
    previous_loss, previous = loss, adv
    rises = torch.zeros(n, device=x.device)
    last_best, halved_last = loss, torch.ones(n, dtype=torch.bool, device=x.device)
    marks, since = checkpoints(config.steps), 0
    for i in range(config.steps + 1):
        out[index[wrong]] = adv[wrong]
        wrong_out[index[wrong]] = True
        keep = ~wrong
        if i == config.steps or not bool(keep.any()):
            out[index[keep]] = best_point[keep]
            break
        (index, x, y, eps, adv, grad, step, best_loss, best_point, best_grad, previous_loss, previous, rises,
         last_best, halved_last) = (t[keep] for t in (index, x, y, eps, adv, grad, step, best_loss, best_point,
                                                      best_grad, previous_loss, previous, rises, last_best,
                                                      halved_last))
        if target is not None:
            target = target[keep]
        momentum = 1.0 if i == 0 else MOMENTUM
        u = (adv - x) / dom.scale
        z = _project(u + step * _direction(grad * dom.scale * dom.mask, config.norm), eps, config.norm)
        z = (dom.clip(x + z * dom.scale) - x) / dom.scale
        moved = u + momentum * (z - u) + (1 - momentum) * (adv - previous) / dom.scale
        previous, adv = adv, dom.clip(x + _project(moved * dom.mask, eps, config.norm) * dom.scale)
        loss, grad, wrong = _loss_and_gradient(model, adv, y, target, config)
        rises += (loss > previous_loss).float()
        previous_loss = loss
        better = loss > best_loss
        best_loss = torch.where(better, loss, best_loss)
        best_point, best_grad = (torch.where(_rows(better, adv), new, old)
                                 for new, old in ((adv, best_point), (grad, best_grad)))
        since += 1
        if marks and i + 1 == marks[0]:
            marks.pop(0)
            halve = (rises <= config.rho * since) | (~halved_last & (last_best >= best_loss))
            step = torch.where(_rows(halve, step), step / 2, step)
            adv = torch.where(_rows(halve, adv), best_point, adv)
            grad = torch.where(_rows(halve, grad), best_grad, grad)
            halved_last, last_best, rises, since = halve, best_loss, torch.zeros_like(rises), 0
    return out, wrong_out


def _loss_and_gradient(model, adv, y, target, config: APGD):
    """Per-example loss (averaged over draws), its gradient, and which examples are misclassified
    (none for a random model: its vote decides afterwards)."""
    adv = adv.detach().requires_grad_(True)
    logits = draw_logits(model, adv, config.draws).float()
    loss = _loss(logits, y, target, config.loss).mean(0)
    grad, = torch.autograd.grad(loss.sum(), adv)
    wrong = logits[0].argmax(1) != y if config.draws == 1 else torch.zeros_like(y, dtype=torch.bool)
    return loss.detach(), grad.detach(), wrong.detach()


def _loss(logits: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None, name: str) -> torch.Tensor:
    """Per draw and example (draws, N): the loss to raise."""
    draws, n, classes = logits.shape
    if target is None and name == "ce":
        return F.cross_entropy(logits.flatten(0, 1), y.repeat(draws), reduction="none").reshape(draws, n)
    ordered = logits.sort(dim=-1).values
    true = logits.gather(-1, y.expand(draws, n)[..., None]).squeeze(-1)
    if target is not None:
        other = logits.gather(-1, target.expand(draws, n)[..., None]).squeeze(-1)
        spread = ordered[..., -1] - (ordered[..., -3] + ordered[..., -4]) / 2 if classes >= 4 else 1.0
    else:
        other = logits.scatter(-1, y.expand(draws, n)[..., None], -torch.inf).max(-1).values
        spread = ordered[..., -1] - ordered[..., -3] if classes >= 3 else 1.0
    return -(true - other) / (spread + 1e-12)


def _rows(flags: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return flags.reshape((-1,) + (1,) * (like.ndim - 1))
