"""One registry of trainable architectures: `@register_model` on a factory function."""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated

from torch import nn

from audit._util import validate as check
from audit._util.errors import AuditInputError

MAX_LAYERS = 64  # entries of a list option (hidden sizes, channels)


@dataclass(frozen=True)
class Range:
    """The closed range of a number option, attached with `Annotated[float, Range(0, 1)]`."""

    low: float
    high: float


Probability = Annotated[float, Range(0.0, 1.0)]


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

    def check_config(self, name: str, config: Mapping, where: str = "config") -> dict:
        """`config` when it names every option of `name`'s factory with a value of its type and range.

        Sizes (int options) are integers from 1 to 2**31 - 1, lists of them hold at most MAX_LAYERS,
        floats are finite and within their `Range`: a checkpoint's config is untrusted data.
        """
        factory = self.get(name).factory
        check.mapping(config, where)
        params = inspect.signature(factory).parameters
        unknown = sorted(set(config) - set(params))
        if unknown:
            raise AuditInputError(f"{where}: architecture {name!r} has no option(s) {', '.join(unknown)}; "
                                  f"options: {', '.join(params)}")
        missing = [p for p, spec in params.items() if spec.default is inspect.Parameter.empty and p not in config]
        if missing:
            raise AuditInputError(f"{where}: architecture {name!r} needs {', '.join(missing)}")
        hints = typing.get_type_hints(factory, include_extras=True)
        return {key: _check_option(value, hints[key], f"{where}.{key}") for key, value in config.items()}

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


def _check_option(value, hint, where: str):
    limits = next((m for m in getattr(hint, "__metadata__", ()) if isinstance(m, Range)), None)
    base = hint.__origin__ if typing.get_origin(hint) is Annotated else hint
    if base is int:
        return check.integer(value, where)
    if base is float:
        return check.number(value, where, **({"low": limits.low, "high": limits.high} if limits else {}))
    if typing.get_origin(base) is tuple:
        if not isinstance(value, (list, tuple)) or len(value) > MAX_LAYERS:
            raise check.fail(where, f"a list of at most {MAX_LAYERS} sizes", value)
        return [check.integer(v, f"{where}[{i}]") for i, v in enumerate(value)]
    raise TypeError(f"option {where} has an annotation the checks do not know: {hint}")
