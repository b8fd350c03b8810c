"""One registry of trainable architectures: `@register_model` on a factory function."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from audit.errors import AuditInputError


@dataclass(frozen=True)
class ModelEntry:
    name: str
    factory: Callable[..., nn.Module]
    modalities: tuple[str, ...]
    description: str


class ModelRegistry:
    def __init__(self):
        self._entries: dict[str, ModelEntry] = {}

    def register(self, name: str, *, modalities: tuple[str, ...], description: str):
        def decorator(factory: Callable[..., nn.Module]):
            if name in self._entries:
                raise ValueError(f"architecture {name!r} is registered twice")
            self._entries[name] = ModelEntry(name, factory, modalities, description)
            return factory

        return decorator

    def get(self, name: str) -> ModelEntry:
        if name not in self._entries:
            raise AuditInputError(f"unknown architecture {name!r}; registered: {', '.join(self._entries)}")
        return self._entries[name]

    def create(self, name: str, **config) -> nn.Module:
        try:
            return self.get(name).factory(**config)
        except TypeError as exc:
            raise AuditInputError(f"architecture {name!r}: bad configuration ({exc})") from None

    def entries(self) -> list[ModelEntry]:
        return list(self._entries.values())


MODELS = ModelRegistry()
register_model = MODELS.register
create_model = MODELS.create


def list_models() -> list[str]:
    return [entry.name for entry in MODELS.entries()]
