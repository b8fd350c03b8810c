"""Adversarial training (Madry et al. 2018): a share of each batch replaced by its PGD examples.

The examples come from the robustness analyzer's own PGD (`audit.methods.robustness.attacks.pgd`), in the
same domain (pixels within the image range, table columns in standard deviations) and, by
default, at the analyzer's default epsilon, so training hardens the model against the attack
the audit measures. PGD here starts at a random point of the ball and keeps, per example, the
first point it finds misclassified (the analyzer's rule), else its last step.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from audit._util import validate as check
from audit.analyzers.robustness.analyzer import default_epsilon
from audit.core.dataset import Dataset
from audit._util.errors import AuditInputError
from audit.mitigation.fair_training import TrainStep
from audit.core.model import Model
from audit.methods.robustness.attacks import PGD, pgd
from audit.methods.robustness.domain import input_domain

ATTACKS = ("pgd",)


@dataclass(frozen=True, kw_only=True)
class AdversarialTraining:
    """A spec's `[adversarial]` table (`audit train --adversarial pgd`)."""

    attack: str = "pgd"
    epsilon: float | None = None  # None: the robustness analyzer's default for the data (L-inf)
    steps: int = 10
    share: float = 0.5  # of each batch replaced by its adversarial examples

    def __post_init__(self):
        if self.attack not in ATTACKS:
            raise AuditInputError(f"adversarial attack must be one of {', '.join(ATTACKS)}, found {self.attack!r}")
        if self.epsilon is not None and (isinstance(self.epsilon, bool) or not isinstance(self.epsilon, (int, float))
                                         or not 0 < self.epsilon < float("inf")):
            raise AuditInputError(f"adversarial epsilon must be a positive number, found {self.epsilon!r}")
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 1:
            raise AuditInputError(f"adversarial steps must be a whole number of at least 1, found {self.steps!r}")
        if isinstance(self.share, bool) or not isinstance(self.share, (int, float)) or not 0 < self.share <= 1:
            raise AuditInputError(f"adversarial share must lie in (0, 1], found {self.share!r}")

    @classmethod
    def from_dict(cls, d: dict) -> AdversarialTraining:
        check.known_options(cls, d, "[adversarial]")
        return cls(**d)

    def to_dict(self) -> dict:
        return asdict(self)

    def step(self, model: Model, train_data: Dataset, x_train: torch.Tensor, seed: int) -> PGDStep:
        if model.modality == "text":
            raise AuditInputError("adversarial training needs continuous inputs (images or tables), not text")
        domain = input_domain(model, train_data, x_train)
        epsilon = self.epsilon or default_epsilon(model.modality, "linf", domain)
        return PGDStep(model, domain, epsilon, PGD(steps=self.steps), self.share, seed)


class PGDStep(TrainStep):
    def __init__(self, model: Model, domain, epsilon: float, attack: PGD, share: float, seed: int):
        self.model, self.domain, self.epsilon, self.attack, self.share = model, domain, epsilon, attack, share
        self.seed = seed

    def __call__(self, module, optimizer, x, y, rows):
        count = max(1, round(self.share * len(x)))
        self.seed += 1
        module.eval()  # the attack sees the model as it predicts (dropout off)
        adversarial = pgd(self.model, x[:count], y[:count], self.epsilon, self.domain, config=self.attack,
                          seed=self.seed).to(x.device)
        module.train()
        super().__call__(module, optimizer, torch.cat([adversarial, x[count:]]), y, rows)
