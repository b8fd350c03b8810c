"""Declarative model specs: one TOML file per reference model in the zoo (`models/*.toml`).

    architecture = "cnn"
    dataset = "digits"            # a built-in dataset, or: data = "file.csv", target = "...", ...
    output = "digits-cnn.pt"      # relative to the spec's folder
    [model]                       # architecture options
    channels = [16, 32]
    [training]                    # TrainConfig fields
    epochs = 30
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from audit.errors import AuditInputError
from audit.models.training import TrainConfig

KEYS = {"architecture", "description", "dataset", "data", "target", "sensitive", "text_column", "output",
        "model", "training"}


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

    @classmethod
    def from_toml(cls, path: str | Path) -> ModelSpec:
        path = Path(path)
        if not path.is_file():
            raise AuditInputError(f"{path}: no such model spec")
        try:
            doc = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise AuditInputError(f"{path}: not valid TOML ({exc})") from None
        unknown = sorted(set(doc) - KEYS)
        if unknown:
            raise AuditInputError(f"{path}: unknown key(s) {unknown}; a spec has {sorted(KEYS)}")
        if "architecture" not in doc:
            raise AuditInputError(f"{path}: 'architecture' is missing")
        here = path.parent
        try:
            training = TrainConfig.from_dict(doc.get("training", {}))
        except AuditInputError as exc:
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
        )
