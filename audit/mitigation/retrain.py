"""Retraining a model with a fairness mitigation, on the data and settings its checkpoint records."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

from audit._util.errors import AuditInputError
from audit.core.model import Model
from audit.mitigation.adversarial_training import PGDTraining
from audit.models.adversarial_training import AdversarialTraining
from audit.models.fair_training import Mitigation
from audit.models.spec import LabelBias, ModelSpec
from audit.models.training import TrainConfig, TrainingHook, TrainingOutcome, train


def training_hook(mitigation: Mitigation | None, adversarial: AdversarialTraining | None) -> TrainingHook | None:
    """The training loop's hook for fairness-aware training or adversarial training (at most one of them)."""
    if mitigation is not None and adversarial is not None:
        raise AuditInputError("train with one of a fairness mitigation and adversarial training, not both")
    return PGDTraining(adversarial) if adversarial is not None else mitigation


def retrain(model: Model, mitigation: Mitigation | None = None, *, adversarial: AdversarialTraining | None = None,
            quiet: bool = False) -> TrainingOutcome:
    """`model`'s architecture trained again as its checkpoint records (data, label bias, training
    options), with `mitigation` or `adversarial` training in the loop (neither: plain training); the new model
    keeps the intended and out-of-scope use the original states."""
    hook = training_hook(mitigation, adversarial)
    if model.architecture in (None, "torchscript") or not model.task.training:
        raise AuditInputError("retraining needs a checkpoint written by audit train (it records how it was trained)")
    recorded = model.task.training
    where = model.task.dataset
    if not where.get("builtin") and not where.get("path"):
        raise AuditInputError("the model does not record the data it was trained on; it cannot be retrained")
    if where.get("path") and not Path(where["path"]).is_file():
        raise AuditInputError(f"the model was trained on {where['path']}, which is not here")
    known = {f.name for f in fields(TrainConfig)}
    config = TrainConfig.from_dict({k: v for k, v in recorded.items() if k in known})
    bias = where.get("label_bias")
    spec = ModelSpec(architecture=model.architecture, output=Path("unused.pt"), dataset=where.get("builtin"),
                     data=Path(where["path"]) if where.get("path") else None, target=where.get("target"),
                     sensitive=tuple(where.get("sensitive") or ()), text_column=where.get("text_column"),
                     label_bias=LabelBias.from_dict(bias, "the model's training record") if bias is not None else None,
                     use=model.task.use())
    splits = spec.splits(seed=config.seed)
    if where.get("path") and splits[2].source.get("sha256") != where.get("sha256"):
        raise AuditInputError(f"{where['path']} changed since the model was trained on it; it cannot be retrained")
    outcome = train(model.architecture, *splits, config=config, model_config=model.config, hook=hook, quiet=quiet)
    spec.stated_use(outcome.model)  # a mitigated model serves what the original did
    return outcome


def recorded_adversarial(model: Model) -> AdversarialTraining:
    """The adversarial training `model`'s checkpoint records (attack, epsilon, steps, share), else the defaults."""
    recorded = (model.task.training or {}).get("adversarial")
    return AdversarialTraining.from_dict(dict(recorded)) if recorded else AdversarialTraining()
