"""Declarative model specs: one TOML file per reference model in the zoo (`models/*.toml`).

    architecture = "cnn"
    intended_use = "..."          # optional: what the model is for and not for; its checkpoint carries them
    out_of_scope = "..."          # to the model card (`audit report --model-card`)
    dataset = "digits"            # a built-in dataset, or: data = "file.csv", target = "...", ...
    output = "digits-cnn.pt"      # relative to the spec's folder
    [model]                       # architecture options
    channels = [16, 32]
    [training]                    # TrainConfig fields
    epochs = 30
    [label_bias]                  # optional, for demonstration models that a gate must stop:
    attribute = "sex"             # in the training and validation splits, relabel this share
    group = "Female"              # of the group's examples whose label is not `label` as `label`
    label = "<=50K"
    rate = 0.6
    [mitigation]                  # optional fairness-aware training (audit/models/fair_training.py):
    method = "reweighing"         # reweighing, lagrangian or adversarial_debiasing
    sensitive = "sex"             # used for training only; a model input only if training includes it
    constraint = "demographic_parity"
    strength = 1.0
    [adversarial]                 # optional adversarial training (audit/models/adversarial_training.py)
    attack = "pgd"
    steps = 10
    share = 0.5
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from audit._util.documents import read_toml
from audit._util.errors import AuditInputError
from audit.core.dataset import Dataset
from audit.core.model import USE_KEYS, Model, checked_use
from audit.io.locate import training_splits
from audit.models.adversarial_training import AdversarialTraining
from audit.models.fair_training import Mitigation
from audit.models.training import TrainConfig

KEYS = {"architecture", "description", "dataset", "data", "target", "sensitive", "text_column", "output",
        "model", "training", "label_bias", "mitigation", "adversarial", *USE_KEYS}


@dataclass(frozen=True)
class LabelBias:
    """Leak a sensitive attribute into the labels: relabel a share of one group's examples."""

    attribute: str
    group: str
    label: str
    rate: float

    @classmethod
    def from_dict(cls, d: dict, where: str | Path) -> LabelBias:
        """A `[label_bias]` table of `where` (a spec, or a checkpoint's training record)."""
        try:
            bias = cls(**d)
        except TypeError as exc:
            raise AuditInputError(f"{where}: [label_bias] needs attribute, group, label and rate ({exc})") from None
        if not 0 <= bias.rate <= 1:
            raise AuditInputError(f"{where}: [label_bias] rate must be within 0 and 1, found {bias.rate}")
        return bias

    def apply(self, data: Dataset, *, seed: int) -> Dataset:
        if self.attribute not in data.sensitive.columns:
            raise AuditInputError(f"label_bias: {data.name} has no sensitive column {self.attribute!r}")
        if self.label not in data.classes:
            raise AuditInputError(f"label_bias: label {self.label!r} is not a class of {data.name} {data.classes}")
        members = data.sensitive[self.attribute].astype(str).to_numpy() == self.group
        if not members.any():
            raise AuditInputError(f"label_bias: no {self.attribute} = {self.group!r} rows in {data.name}")
        target = data.classes.index(self.label)
        candidates = np.flatnonzero(members & (data.labels != target))
        rng = np.random.default_rng(seed)
        chosen = rng.choice(candidates, size=int(round(self.rate * len(candidates))), replace=False)
        labels = data.labels.copy()
        labels[chosen] = target
        return replace(data, labels=labels, source={**data.source, "label_bias": self.__dict__})


@dataclass(frozen=True)
class ModelSpec:
    architecture: str
    output: Path
    dataset: str | None = None
    data: Path | None = None
    target: str | None = None
    sensitive: tuple[str, ...] = ()
    text_column: str | None = None
    description: str = ""
    model: dict = field(default_factory=dict)
    training: TrainConfig = TrainConfig()
    label_bias: LabelBias | None = None
    mitigation: Mitigation | None = None
    adversarial: AdversarialTraining | None = None
    use: dict = field(default_factory=dict)  # intended_use and out_of_scope, as stated

    @classmethod
    def from_toml(cls, path: str | Path) -> ModelSpec:
        path = Path(path)
        doc = read_toml(path, what="model spec")
        unknown = sorted(set(doc) - KEYS)
        if unknown:
            raise AuditInputError(f"{path}: unknown key(s) {unknown}; a spec has {sorted(KEYS)}")
        if "architecture" not in doc:
            raise AuditInputError(f"{path}: 'architecture' is missing")
        here = path.parent
        try:
            training = TrainConfig.from_dict(doc.get("training", {}))
            mitigation = Mitigation.from_dict(doc["mitigation"]) if "mitigation" in doc else None
            adversarial = AdversarialTraining.from_dict(doc["adversarial"]) if "adversarial" in doc else None
            use = checked_use(doc, "")
        except (AuditInputError, TypeError) as exc:
            raise AuditInputError(f"{path}: {exc}") from None
        return cls(
            architecture=doc["architecture"],
            output=here / doc.get("output", path.with_suffix(".pt").name),
            dataset=doc.get("dataset"),
            data=here / doc["data"] if "data" in doc else None,
            target=doc.get("target"),
            sensitive=tuple(doc.get("sensitive", ())),
            text_column=doc.get("text_column"),
            description=doc.get("description", ""),
            model=dict(doc.get("model", {})),
            training=training,
            label_bias=LabelBias.from_dict(doc["label_bias"], path) if "label_bias" in doc else None,
            mitigation=mitigation,
            adversarial=adversarial,
            use=use,
        )

    def stated_use(self, model: Model) -> Model:
        """`model` with the spec's intended and out-of-scope use on its task, which its checkpoint keeps."""
        model.task = replace(model.task, **self.use)
        return model

    def splits(self, *, seed: int) -> tuple[Dataset, Dataset, Dataset]:
        """Train, validation and test data; a label bias taints train and validation, never test."""
        train, validation, test = training_splits(dataset=self.dataset, data=self.data, target=self.target,
                                                  sensitive=self.sensitive, text_column=self.text_column, seed=seed)
        if self.label_bias is not None:
            train, validation = (self.label_bias.apply(d, seed=seed + i) for i, d in enumerate((train, validation)))
        return train, validation, test

