"""Adversarial training (Madry et al. 2018): a share of each batch replaced by its PGD examples.

`PGDTraining` is the training loop's hook (`audit.models.train(..., hook=PGDTraining(settings))`). The examples
come from the robustness analyzer's own PGD (`audit.methods.robustness.attacks.pgd`), in the same domain (pixels
within the image range, table columns in standard deviations) and, by default, at the analyzer's default
epsilon, so training hardens the model against the attack the audit measures. PGD here starts at a random point
of the ball and keeps, per example, the first point it finds misclassified (the analyzer's rule), else its last
step.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from audit._util.errors import AuditInputError
from audit.analyzers.robustness.epsilons import default_epsilon
from audit.core.dataset import Dataset
from audit.core.model import Model
from audit.methods.robustness.attacks import PGD, pgd
from audit.methods.robustness.domain import Domain, input_domain
from audit.models.adversarial_training import AdversarialTraining
from audit.models.training import TrainStep


@dataclass(frozen=True)
class PGDTraining:
    """The training loop's hook for adversarial training with `settings`."""

    settings: AdversarialTraining

    def step(self, model: Model, train_data: Dataset, x_train: torch.Tensor, labels: torch.Tensor,
             seed: int) -> PGDStep:
        if model.modality == "text":
            raise AuditInputError("adversarial training needs continuous inputs (images or tables), not text")
        domain = input_domain(model, train_data, x_train)
        epsilon = self.settings.epsilon or default_epsilon(model.modality, "linf", domain)
        return PGDStep(model, domain, epsilon, PGD(steps=self.settings.steps), self.settings.share, seed)

    def record(self, step: PGDStep) -> dict:
        return {"adversarial": {**self.settings.to_dict(), "epsilon": step.epsilon}}


class PGDStep(TrainStep):
    def __init__(self, model: Model, domain: Domain, epsilon: float, attack: PGD, share: float, seed: int):
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
