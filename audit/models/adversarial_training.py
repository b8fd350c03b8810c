"""The settings of adversarial training (Madry et al. 2018): a spec's `[adversarial]` table.

The training loop's hook that makes the PGD examples is `audit.mitigation.adversarial_training.PGDTraining`: the
attack and the robustness analyzer's default epsilon live above the models.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from audit._util import validate as check
from audit._util.errors import AuditInputError

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
