"""Group-specific thresholds kept as plain data: the rule `audit.methods.fairness.thresholds` fits with
fairlearn's ThresholdOptimizer, replayed here without fairlearn.

fairlearn fits, per group of the sensitive column, a randomized rule on the model's
positive-class score: with probability p0 apply threshold operation 0, else operation 1,
and (equalized odds) with probability p_ignore predict a constant instead. `GroupThresholds`
holds that rule as numbers, so a checkpoint carries it and loads with `weights_only=True`,
and replays fairlearn's prediction exactly: the positive probability of its `_pmf_predict`
and the draws of its `predict(..., random_state=seed)` (one uniform number per row, in row
order). The decisions are therefore randomized yet reproducible on the same rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from audit._util import validate as check
from audit._util.errors import AuditInputError
from audit.core.choices import CONSTRAINTS

OPERATORS = (">", "<")
# Scores are probabilities: an infinite threshold of fairlearn's is kept as one just outside [0, 1],
# which decides every score the same way and stays plain, finite data.
LOW, HIGH = -1.0, 2.0
RULE_FIELDS = ("p0", "operator0", "threshold0", "p1", "operator1", "threshold1", "p_ignore", "constant")
MAX_GROUPS = 10_000


@dataclass(frozen=True)
class GroupThresholds:
    """A fitted randomized threshold rule per group of `column`, on the score of class `positive`."""

    column: str
    constraint: str
    positive: int
    seed: int
    rules: Mapping[str, Mapping[str, float | str]]
    tol: float | None = None  # fairlearn's relaxed constraint: the groups' selection rates lie within tol

    def positive_probability(self, score: np.ndarray, groups: pd.Series) -> np.ndarray:
        """The probability of deciding `positive` for each row: fairlearn's `_pmf_predict(...)[:, 1]`."""
        values = groups.astype(str).to_numpy()
        unknown = sorted(set(values) - set(self.rules))
        if unknown:
            raise AuditInputError(f"{self.column} value(s) {unknown[:5]} have no thresholds; the model has them "
                                  f"for {sorted(self.rules)}")
        out = np.zeros(len(score))
        for group, rule in self.rules.items():
            member = values == group
            s = score[member]
            mixed = rule["p0"] * _apply(rule["operator0"], rule["threshold0"], s) + \
                rule["p1"] * _apply(rule["operator1"], rule["threshold1"], s)
            out[member] = rule["p_ignore"] * rule["constant"] + (1 - rule["p_ignore"]) * mixed
        return out

    def decide(self, proba: np.ndarray, groups: pd.Series) -> np.ndarray:
        """One-hot decisions (N, classes) for the model's probabilities: fairlearn's `predict` with
        `random_state=seed` on these rows, in this order."""
        chance = self.positive_probability(proba[:, self.positive], groups)
        positive = chance >= np.random.RandomState(self.seed).rand(len(chance))
        decided = np.zeros_like(proba, dtype=np.float64)
        decided[:, self.positive] = positive
        decided[:, 1 - self.positive] = ~positive
        return decided

    def to_dict(self) -> dict:
        relaxed = {} if self.tol is None else {"tol": self.tol}
        return {"method": "thresholds", "column": self.column, "constraint": self.constraint,
                "positive": self.positive, "seed": self.seed, **relaxed,
                "rules": {group: dict(rule) for group, rule in self.rules.items()}}

    @classmethod
    def from_dict(cls, d, where: str = "task.postprocessing") -> GroupThresholds:
        """Thresholds from `to_dict`, every field checked: they come from an untrusted file."""
        check.mapping(d, where)
        unknown = sorted(set(d) - {"method", "column", "constraint", "positive", "seed", "tol", "rules"})
        if unknown:
            raise AuditInputError(f"{where}: unknown field(s) {', '.join(unknown)}")
        if d.get("method") != "thresholds":
            raise check.fail(f"{where}.method", "'thresholds'", d.get("method"))
        constraint = check.string(d.get("constraint"), f"{where}.constraint")
        if constraint not in CONSTRAINTS:
            raise check.fail(f"{where}.constraint", f"one of {', '.join(CONSTRAINTS)}", constraint)
        rules = check.mapping(d.get("rules"), f"{where}.rules")
        if not 1 <= len(rules) <= MAX_GROUPS:
            raise AuditInputError(f"{where}.rules must hold 1 to {MAX_GROUPS} groups, found {len(rules)}")
        return cls(column=check.string(d.get("column"), f"{where}.column"), constraint=constraint,
                   positive=check.integer(d.get("positive"), f"{where}.positive", low=0, high=1),
                   seed=check.integer(d.get("seed"), f"{where}.seed", low=0, high=2**32 - 1),
                   tol=None if d.get("tol") is None else check.number(d["tol"], f"{where}.tol", low=0.0, high=1.0),
                   rules={g: _checked_rule(r, f"{where}.rules.{g}") for g, r in rules.items()})


def _apply(operator: str, threshold: float, score: np.ndarray) -> np.ndarray:
    return score > threshold if operator == ">" else score < threshold


def _checked_rule(rule, where: str) -> dict:
    check.mapping(rule, where)
    if set(rule) != set(RULE_FIELDS):
        raise AuditInputError(f"{where} must have exactly the fields {', '.join(RULE_FIELDS)}")
    out = {}
    for key in RULE_FIELDS:
        if key.startswith("operator"):
            if rule[key] not in OPERATORS:
                raise check.fail(f"{where}.{key}", "'>' or '<'", rule[key])
            out[key] = rule[key]
        elif key.startswith("threshold"):
            out[key] = check.number(rule[key], f"{where}.{key}", low=LOW, high=HIGH)
        else:
            out[key] = check.number(rule[key], f"{where}.{key}", low=0.0, high=1.0)
    if abs(out["p0"] + out["p1"] - 1) > 1e-6:
        raise AuditInputError(f"{where}: p0 and p1 must add up to 1")
    return out
