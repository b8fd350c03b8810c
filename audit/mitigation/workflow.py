"""`mitigate`: a model fixed by one method (thresholds, a fairness-aware retraining, PGD training, or a sweep of
one of them), compared with the original under the policy. What `audit mitigate` does, less the writing."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path

from audit._util.errors import AuditInputError
from audit.core.model import Model
from audit.executor.compare import Comparison, compare
from audit.io.limits import MAX_PARAMETERS
from audit.io.locate import audit_data
from audit.models.checkpoint import load as load_model
from audit.models.fair_training import Mitigation
from audit.mitigation.postprocess import positive_index, with_thresholds
from audit.mitigation.retrain import recorded_adversarial, retrain
from audit.mitigation import sweep as sweeping
from audit.policy.gates import Policy

DEFAULT_CONSTRAINT = "demographic_parity"


@dataclasses.dataclass(frozen=True)
class Mitigated:
    """The fixed model, its comparison with the original (the sweep's section in it, when swept) and one line
    saying what was done."""

    model: Model
    comparison: Comparison
    done: str

    def saved_as(self, source: Mapping) -> Mitigated:
        """The same, the comparison naming the fixed model by where it was saved (`source`: path and sha256, as
        loading the checkpoint gives them)."""
        candidate = self.comparison.candidate
        candidate = dataclasses.replace(candidate, model={**candidate.model, **source})
        return dataclasses.replace(self, comparison=dataclasses.replace(self.comparison, candidate=candidate))


def mitigate(model: Model | str | Path, *, method: str, sensitive: str | None = None, constraint: str | None = None,
             strength: float | None = None, sweep: bool = False, grid: str | Sequence[float] | None = None,
             max_disparity: float | None = None, min_robust_accuracy: float | None = None,
             data: str | Path | None = None, validation: str | Path | None = None, target: str | None = None,
             analyzers: Sequence[str] | None = None, options: dict[str, dict] | None = None,
             policy: Policy | None = None, positive_class: str | None = None, seed: int = 0,
             samples: int | None = None, max_parameters: int = MAX_PARAMETERS, quiet: bool = False,
             command: str | None = None) -> Mitigated:
    """`model` (a Model, or a checkpoint to load) fixed by `method` and compared with the original on `data` (default:
    the test split of the data it was trained on) under `policy`.

    thresholds: group-specific thresholds for `constraint` over the `sensitive` column, fitted on `validation`
    (default: the validation split); reweighing, lagrangian, adversarial_debiasing: retrained as the checkpoint
    records with that method (`constraint`, `strength`); pgd: retrained with PGD adversarial training.
    `sweep`: the method at each value of `grid` (tol, strength or epsilon), keeping the most accurate point
    within `max_disparity` (fairness) or `min_robust_accuracy` (pgd), else the policy's gate on that measure.
    """
    if not 0 <= seed < 2**32:
        raise AuditInputError(f"--seed must be from 0 to {2**32 - 1} for mitigate, found {seed}")
    _check_method(method, sensitive=sensitive, constraint=constraint, strength=strength, validation=validation)
    grid, limit = _sweep_limits(method, sweep, grid=grid, strength=strength, constraint=constraint,
                                max_disparity=max_disparity, min_robust_accuracy=min_robust_accuracy,
                                sensitive=sensitive, policy=policy)
    if not isinstance(model, Model):
        model = load_model(model, max_parameters=max_parameters)
    positive_index(model, positive_class)  # a class the model lacks is refused before the data is read
    options = {name: dict(values) for name, values in (options or {}).items()}
    if positive_class is not None and (analyzers is None or "fairness" in analyzers):
        options.setdefault("fairness", {})["positive_class"] = positive_class
    where, columns = dict(model.task.dataset), [sensitive] if sensitive else []
    test = audit_data(where, data=data, target=target, sensitive=columns, classes=model.classes)
    fitted_on = audit_data(where, data=validation, target=target, sensitive=columns, classes=model.classes,
                           split="validation") if method == "thresholds" else None
    sections = ()
    if sweep:
        swept = sweeping.sweep(model, test, method=method, column=sensitive, limit=limit,
                      constraint=constraint or DEFAULT_CONSTRAINT, grid=grid, validation=fitted_on,
                      adversarial=recorded_adversarial(model), samples=samples,
                      epsilon=options.get("robustness", {}).get("epsilon"),
                      confidence=options.get("fairness", {}).get("confidence", 0.95), seed=seed,
                      positive_class=positive_class)
        fixed, sections, done = swept.model, (swept.result(),), swept.summary()
    elif method == "pgd":
        outcome = retrain(model, adversarial=recorded_adversarial(model), quiet=quiet)
        fixed = outcome.model
        epsilon = fixed.task.training["adversarial"]["epsilon"]
        done = f"retrained with PGD adversarial training (epsilon {epsilon:.3g}) in {outcome.seconds:.1f} s"
    elif method == "thresholds":
        fixed, _ = with_thresholds(model, fitted_on, column=sensitive, constraint=constraint, seed=seed,
                                   positive_class=positive_class)
        done = f"thresholds by {sensitive} ({constraint}) fitted on {len(fitted_on):,} rows"
    else:
        given = {"constraint": constraint, "strength": strength}
        mitigation = Mitigation.from_dict({"method": method, "sensitive": sensitive,
                                           **{k: v for k, v in given.items() if v is not None}})
        outcome = retrain(model, mitigation, quiet=quiet)
        fixed = outcome.model
        done = f"retrained with {method} on {sensitive} ({mitigation.constraint}) in {outcome.seconds:.1f} s"
    comparison = compare(model, fixed, test, analyzers, seed=seed, policy=policy, samples=samples, options=options,
                         command=command)
    return Mitigated(fixed, dataclasses.replace(comparison, sections=sections), done)


def _check_method(method: str, *, sensitive, constraint, strength, validation) -> None:
    if method == "thresholds" and constraint is None:
        raise AuditInputError("--method thresholds needs --constraint (demographic_parity or equalized_odds)")
    if method == "thresholds" and strength is not None:
        raise AuditInputError("--strength goes with a training method, not thresholds")
    if method != "thresholds" and validation:
        raise AuditInputError("--validation goes with --method thresholds; retraining uses the recorded splits")
    if method == "pgd" and (constraint or strength is not None):
        raise AuditInputError("--constraint and --strength go with a fairness method, not pgd")
    if method != "pgd" and sensitive is None:
        raise AuditInputError(f"--method {method} needs --sensitive COL, the column to equalize over")


def _sweep_limits(method: str, swept: bool, *, grid, strength, constraint, max_disparity, min_robust_accuracy,
                  sensitive, policy) -> tuple[tuple[float, ...] | None, float | None]:
    """The grid of a sweep and the limit it chooses by (`max_disparity` or `min_robust_accuracy`, else the
    policy's gate on the sweep's measure)."""
    if not swept:
        if grid is not None or max_disparity is not None or min_robust_accuracy is not None:
            raise AuditInputError("--grid, --max-disparity and --min-robust-accuracy go with --sweep")
        return None, None
    if strength is not None:
        raise AuditInputError("--sweep varies the strength: give its values with --grid, not --strength")
    knob = sweeping.check_sweepable(method, constraint or DEFAULT_CONSTRAINT)
    if grid is not None:
        grid = sweeping.parse_grid(grid, knob) if isinstance(grid, str) else sweeping.checked_grid(grid, knob)
    robust = method == "pgd"
    given, other = (min_robust_accuracy, "--max-disparity") if robust else (max_disparity, "--min-robust-accuracy")
    if (max_disparity if robust else min_robust_accuracy) is not None:
        raise AuditInputError(f"{other} goes with a {'fairness' if robust else 'pgd'} sweep, not {method}")
    metric = sweeping.ROBUST if robust else sweeping.DISPARITY[constraint or DEFAULT_CONSTRAINT]
    limit = given if given is not None else sweeping.gate_limit(policy, metric, sensitive)
    if limit is None:
        flag, gate = (("--min-robust-accuracy A", f"min on robustness.{metric}") if robust else
                      ("--max-disparity D", f"max on fairness.{sensitive}.{metric}"))
        raise AuditInputError(f"--sweep needs a limit to choose by: {flag}, or a --policy gate with {gate}")
    if not 0 <= limit <= 1:
        raise AuditInputError(f"the sweep's limit must be from 0 to 1, found {limit:g}")
    return grid, limit
