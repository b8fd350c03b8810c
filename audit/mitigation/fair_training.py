"""Fairness-aware training: what one optimizer step of the training loop does for each mitigation method.

- `reweighing` (Kamiran & Calders 2012): each training example is weighted by
  P(a) P(y) / P(a, y) in the cross-entropy, so that label and group are independent in the
  weighted data.
- `lagrangian`: the reductions view of a fairness constraint (Agarwal et al. 2018), solved
  inside the PyTorch loop: cross-entropy plus `strength` times the batch's constraint
  violation, the sum over groups of |P(positive | group) - P(positive)| computed from the
  predicted probabilities (demographic parity), or the same within each true label
  (equalized odds). fairlearn's ExponentiatedGradient is not used: it needs a scikit-learn
  estimator taking `sample_weight` and returns a randomized ensemble of models, not one
  network a checkpoint can hold. The multiplier is fixed (a penalty), not learnt.
- `adversarial_debiasing` (Zhang, Lemoine & Mitchell 2018): an adversary learns to predict
  the group from the positive-class logit (and the true label, for equalized odds); the
  predictor's gradient is its own loss gradient minus its projection on the adversary's, minus
  `strength` times the adversary's.

The sensitive column is read from the data's sensitive attributes for training only; it is
a model input only when the training configuration includes it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from audit._util import validate as check
from audit.core.dataset import Dataset
from audit._util.errors import AuditInputError
from audit.core.choices import FAIR_METHODS as METHODS
from audit.core.postprocessing import CONSTRAINTS

ADVERSARY_STEPS = 5  # per predictor step: an adversary that keeps up stops the predictor overshooting


@dataclass(frozen=True, kw_only=True)
class Mitigation:
    """A spec's `[mitigation]` table (`audit train --mitigate METHOD --sensitive COL`)."""

    method: str
    sensitive: str
    constraint: str = "demographic_parity"
    strength: float = 1.0
    positive: int = 1  # the class index whose rate the constraint equalizes

    def __post_init__(self):
        if self.method not in METHODS:
            raise AuditInputError(f"mitigation method must be one of {', '.join(METHODS)}, found {self.method!r}")
        if self.constraint not in CONSTRAINTS:
            raise AuditInputError(f"mitigation constraint must be one of {', '.join(CONSTRAINTS)}, "
                                  f"found {self.constraint!r}")
        if isinstance(self.strength, bool) or not isinstance(self.strength, (int, float)) or \
                not 0 <= self.strength < float("inf"):
            raise AuditInputError(f"mitigation strength must be a number of at least 0, found {self.strength!r}")

    @classmethod
    def from_dict(cls, d: dict) -> Mitigation:
        check.known_options(cls, d, "[mitigation]")
        if "method" not in d or "sensitive" not in d:
            raise AuditInputError("[mitigation] needs method and sensitive")
        return cls(**d)

    def to_dict(self) -> dict:
        return asdict(self)

    def step(self, module: nn.Module, train_data: Dataset, labels: torch.Tensor, seed: int) -> TrainStep:
        """The optimizer step of this method on `train_data` (its `labels` as class indices)."""
        if self.sensitive not in train_data.sensitive.columns:
            raise AuditInputError(f"--sensitive {self.sensitive}: {train_data.name} has no sensitive column "
                                  f"{self.sensitive!r}; it has {', '.join(train_data.sensitive_names) or 'none'}")
        if not 0 <= self.positive < len(train_data.classes):
            raise AuditInputError(f"mitigation positive class {self.positive} is not a class of {train_data.name}")
        codes, _ = train_data.sensitive[self.sensitive].astype(str).factorize(sort=True)
        groups = torch.from_numpy(codes.astype(np.int64))
        if self.method == "reweighing":
            return Reweighing(groups, labels)
        if self.method == "lagrangian":
            return Lagrangian(groups, self.constraint, self.strength, self.positive)
        return AdversarialDebiasing(module, groups, self.constraint, self.strength, self.positive, seed)


class TrainStep:
    """One optimizer step on a batch, on the cross-entropy unless a method changes it; `rows` index the
    training data (for their groups)."""

    def __call__(self, module: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor,
                 rows: torch.Tensor) -> None:
        optimizer.zero_grad()
        self.loss(module(x), y, rows).backward()
        optimizer.step()

    def loss(self, logits: torch.Tensor, y: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, y)


class Reweighing(TrainStep):
    def __init__(self, groups: torch.Tensor, labels: torch.Tensor):
        joint = torch.zeros(int(groups.max()) + 1, int(labels.max()) + 1)
        joint.index_put_((groups, labels), torch.ones(len(labels)), accumulate=True)
        joint /= len(labels)
        expected = joint.sum(1, keepdim=True) * joint.sum(0, keepdim=True)
        self.weights = (expected / joint.clamp(min=1e-12))[groups, labels]

    def loss(self, logits, y, rows):
        w = self.weights[rows].to(logits.device)
        return (w * F.cross_entropy(logits, y, reduction="none")).sum() / w.sum()


class Lagrangian(TrainStep):
    def __init__(self, groups: torch.Tensor, constraint: str, strength: float, positive: int):
        self.groups, self.constraint, self.strength, self.positive = groups, constraint, strength, positive

    def loss(self, logits, y, rows):
        groups = self.groups[rows].to(logits.device)
        p = torch.softmax(logits, dim=1)[:, self.positive]
        strata = [torch.ones_like(y, dtype=torch.bool)] if self.constraint == "demographic_parity" else \
            [(y == self.positive), (y != self.positive)]
        violation = logits.new_zeros(())
        for stratum in strata:
            if not bool(stratum.any()):
                continue
            overall = p[stratum].mean()
            for g in groups[stratum].unique():
                member = stratum & (groups == g)
                violation = violation + (p[member].mean() - overall).abs()
        return F.cross_entropy(logits, y) + self.strength * violation


class AdversarialDebiasing(TrainStep):
    def __init__(self, module: nn.Module, groups: torch.Tensor, constraint: str, strength: float, positive: int,
                 seed: int):
        torch.manual_seed(seed)
        self.groups, self.constraint, self.strength, self.positive = groups, constraint, strength, positive
        inputs = 1 if constraint == "demographic_parity" else 3
        device = next(module.parameters()).device
        classes = int(groups.max()) + 1
        self.adversary = nn.Sequential(nn.Linear(inputs, 16), nn.ReLU(), nn.Linear(16, classes)).to(device)
        self.adversary_optimizer = torch.optim.Adam(self.adversary.parameters(), lr=1e-2)

    def _adversary_input(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        score = torch.softmax(logits, dim=1)[:, self.positive, None]  # bounded: the adversary's fit stays stable
        if self.constraint == "demographic_parity":
            return score
        label = (y == self.positive).float()[:, None]
        return torch.cat([score, score * label, score * (1 - label)], dim=1)

    def __call__(self, module, optimizer, x, y, rows):
        groups = self.groups[rows].to(y.device)
        params = [p for p in module.parameters() if p.requires_grad]
        logits = module(x)
        predictor_loss = F.cross_entropy(logits, y)
        adversary_loss = F.cross_entropy(self.adversary(self._adversary_input(logits, y)), groups)
        own = torch.autograd.grad(predictor_loss, params, retain_graph=True, allow_unused=True)
        against = torch.autograd.grad(adversary_loss, params, allow_unused=True)
        optimizer.zero_grad()
        for p, g_p, g_a in zip(params, own, against):
            g_p = torch.zeros_like(p) if g_p is None else g_p
            if g_a is None:
                p.grad = g_p
                continue
            unit = g_a / g_a.norm().clamp(min=1e-12)
            p.grad = g_p - (g_p * unit).sum() * unit - self.strength * g_a
        optimizer.step()
        seen = self._adversary_input(logits.detach(), y)
        for _ in range(ADVERSARY_STEPS):
            self.adversary_optimizer.zero_grad()
            F.cross_entropy(self.adversary(seen), groups).backward()
            self.adversary_optimizer.step()
