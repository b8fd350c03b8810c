"""Encoders turn a `Dataset`'s inputs into the tensor a model reads (its input space).

One interface per modality: `fit` on training data, `transform` inputs to a tensor,
`feature_names` of the model's input space, and `to_dict`/`from_dict` as plain data
so a checkpoint stores them without pickling.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
import torch

from audit._util import validate as check
from audit.core.dataset import Dataset
from audit._util.errors import AuditInputError


@dataclass(frozen=True)
class TabularEncoder:
    """Standardized numeric columns and one-hot categorical columns.

    With `passthrough=True` (a user's own model) the `numeric` columns, or every column
    of the data when none are named, are fed as floats, unscaled, in that order.
    """

    numeric: tuple[str, ...] = ()
    means: tuple[float, ...] = ()
    stds: tuple[float, ...] = ()
    lows: tuple[float, ...] = ()
    highs: tuple[float, ...] = ()
    categorical: dict[str, tuple[str, ...]] = field(default_factory=dict)
    passthrough: bool = False
    kind = "tabular"

    @classmethod
    def fit(cls, data: Dataset, *, exclude: Sequence[str] = ()) -> TabularEncoder:
        frame = data.inputs.drop(columns=[c for c in exclude if c in data.inputs.columns])
        if frame.shape[1] == 0:
            raise AuditInputError(f"{data.name}: no input columns left to train on")
        numeric = [c for c in frame.columns if _is_numeric(frame[c])]
        values = frame[numeric].to_numpy(dtype=np.float64)
        stds = values.std(axis=0)
        categorical = {
            c: tuple(sorted(frame[c].astype(str).unique())) for c in frame.columns if c not in numeric
        }
        return cls(
            numeric=tuple(numeric),
            means=tuple(float(m) for m in values.mean(axis=0)),
            stds=tuple(float(s) if s > 0 else 1.0 for s in stds),
            lows=tuple(float(v) for v in values.min(axis=0, initial=np.inf)),
            highs=tuple(float(v) for v in values.max(axis=0, initial=-np.inf)),
            categorical=categorical,
        )

    @property
    def columns(self) -> tuple[str, ...]:
        return self.numeric + tuple(self.categorical)

    def feature_names(self, data: Dataset | None = None) -> list[str]:
        if self.passthrough and not self.numeric:
            return [str(c) for c in data.inputs.columns] if data is not None else []
        return list(self.numeric) + [f"{c}={v}" for c, cats in self.categorical.items() for v in cats]

    def continuous_mask(self, data: Dataset | None = None) -> np.ndarray:
        """True for features that take continuous values (not one-hot or other 0/1 indicators)."""
        if self.passthrough:
            values = self.transform(data).numpy()
            return ~np.all((values == 0) | (values == 1), axis=0)
        sizes = [len(c) for c in self.categorical.values()]
        return np.array([True] * len(self.numeric) + [False] * sum(sizes), dtype=bool)

    def training_bounds(self) -> tuple[np.ndarray, np.ndarray] | None:
        """Per-feature min and max of the training data in the model's input space (None: not known)."""
        if self.passthrough or len(self.lows) != len(self.numeric):
            return None
        ones = sum(len(c) for c in self.categorical.values())
        low = (np.array(self.lows) - self.means) / self.stds
        high = (np.array(self.highs) - self.means) / self.stds
        return np.concatenate([low, np.zeros(ones)]), np.concatenate([high, np.ones(ones)])

    def transform(self, data: Dataset) -> torch.Tensor:
        frame = data.inputs
        where = data.source.get("path", data.name)
        columns = list(self.columns) if self.columns else list(frame.columns)
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise AuditInputError(
                f"{where}: column(s) {', '.join(map(repr, missing))} needed by the model are missing"
            )
        if self.passthrough:
            return torch.from_numpy(_float32(_numeric_values(frame, columns, where), columns, where))
        parts = [(_numeric_values(frame, list(self.numeric), where) - self.means) / self.stds]
        for col, cats in self.categorical.items():
            values = frame[col].astype(str).str.strip().to_numpy()
            parts.append((values[:, None] == np.array(cats, dtype=object)[None, :]).astype(np.float64))
        return torch.from_numpy(_float32(np.concatenate(parts, axis=1), self.feature_names(), where))

    def input_config(self, data: Dataset) -> dict:
        return {"in_features": len(self.feature_names(data))}

    def to_dict(self) -> dict:
        d = asdict(self)
        d["categorical"] = {k: list(v) for k, v in self.categorical.items()}
        return {"kind": self.kind, **{k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}}

    @classmethod
    def from_dict(cls, d: dict, where: str = "encoder") -> TabularEncoder:
        numeric = tuple(check.strings(d["numeric"], f"{where}.numeric"))
        means = check.numbers(d["means"], f"{where}.means")
        stds = check.numbers(d["stds"], f"{where}.stds")
        if any(s <= 0 for s in stds):
            raise AuditInputError(f"{where}.stds must be positive, found {min(stds):g}")
        lows = check.numbers(d.get("lows", []), f"{where}.lows")
        highs = check.numbers(d.get("highs", []), f"{where}.highs")
        for name, values in (("means", means), ("stds", stds), ("lows", lows), ("highs", highs)):
            if len(values) != len(numeric) and (values or name in ("means", "stds")):
                raise AuditInputError(f"{where}.{name} has {len(values)} values for {len(numeric)} numeric columns")
        categorical = {col: tuple(check.strings(cats, f"{where}.categorical.{col}"))
                       for col, cats in check.mapping(d["categorical"], f"{where}.categorical").items()}
        return cls(numeric=numeric, means=tuple(means), stds=tuple(stds), lows=tuple(lows), highs=tuple(highs),
                   categorical=categorical, passthrough=check.boolean(d["passthrough"], f"{where}.passthrough"))


@dataclass(frozen=True)
class ImageEncoder:
    """Images enter the model as they are (N, C, H, W) floats; `low`/`high` is the valid range."""

    shape: tuple[int, ...] | None = None
    low: float = 0.0
    high: float = 1.0
    kind = "image"

    @classmethod
    def fit(cls, data: Dataset, *, exclude: Sequence[str] = ()) -> ImageEncoder:
        """The shape, and the smallest usual pixel range that holds the training images ([0, 1], [-1, 1],
        [0, 255]), else their own min and max."""
        x = data.inputs
        low, high = float(x.min()), float(x.max())
        low, high = next(((lo, hi) for lo, hi in USUAL_RANGES if lo <= low and high <= hi), (low, high))
        return cls(shape=tuple(int(s) for s in x.shape[1:]), low=low, high=high)

    def feature_names(self, data: Dataset | None = None) -> list[str]:
        c, h, w = self.shape if self.shape else data.inputs.shape[1:]
        return [f"c{ci}:{hi},{wi}" for ci in range(c) for hi in range(h) for wi in range(w)]

    def transform(self, data: Dataset) -> torch.Tensor:
        if data.modality != "image":
            raise AuditInputError(f"{data.name}: the model reads images, the data is {data.modality}")
        if self.shape is not None and tuple(data.inputs.shape[1:]) != self.shape:
            raise AuditInputError(
                f"{data.source.get('path', data.name)}: images of shape {tuple(data.inputs.shape[1:])}, "
                f"the model expects (C, H, W) = {self.shape}"
            )
        x = np.ascontiguousarray(data.inputs, dtype=np.float32)
        tolerance = RANGE_TOLERANCE * (self.high - self.low)
        if x.size and (x.min() < self.low - tolerance or x.max() > self.high + tolerance):
            raise AuditInputError(
                f"{data.source.get('path', data.name)}: image values span [{x.min():g}, {x.max():g}], outside the "
                f"model's input range [{self.low:g}, {self.high:g}]; rescale the images the way the model was "
                "trained (e.g. divide by 255), or wrap your own model with encoder=ImageEncoder(low=..., high=...)"
            )
        return torch.from_numpy(x)

    def input_config(self, data: Dataset) -> dict:
        c, h, w = self.shape
        return {"in_channels": c, "height": h, "width": w}

    def to_dict(self) -> dict:
        return {"kind": self.kind, "shape": list(self.shape) if self.shape else None, "low": self.low, "high": self.high}

    @classmethod
    def from_dict(cls, d: dict, where: str = "encoder") -> ImageEncoder:
        shape = None
        if d["shape"] is not None:
            if not isinstance(d["shape"], (list, tuple)) or len(d["shape"]) != 3:
                raise check.fail(f"{where}.shape", "(channels, height, width)", d["shape"])
            shape = tuple(check.integer(s, f"{where}.shape[{i}]") for i, s in enumerate(d["shape"]))
        low, high = check.number(d["low"], f"{where}.low"), check.number(d["high"], f"{where}.high")
        if not low < high:
            raise AuditInputError(f"{where}: the image range [{low:g}, {high:g}] is empty")
        return cls(shape=shape, low=low, high=high)


USUAL_RANGES = ((0.0, 1.0), (-1.0, 1.0), (0.0, 255.0))
MAX_TOKENS = 16384  # token ids per text: (rows, max_length) int64 must fit in memory
RANGE_TOLERANCE = 0.05  # share of the range images may stray outside it before they are refused as mis-scaled

_TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z]+)?|[^\sa-z0-9]")


@dataclass(frozen=True)
class Tokenizer:
    """Lower-cased word tokens; id 0 pads, id 1 is an unknown word."""

    vocab: tuple[str, ...] = ("<pad>", "<unk>")
    max_length: int = 64
    kind = "text"
    PAD = 0
    UNK = 1
    markers = ()  # ids of tokens that frame the words ([CLS], [SEP]): none here

    @classmethod
    def fit(cls, data: Dataset, *, exclude: Sequence[str] = (), min_count: int = 2, max_size: int = 20000,
            max_length: int = 64) -> Tokenizer:
        if data.modality != "text":
            raise AuditInputError(f"{data.name}: a tokenizer needs text data, found {data.modality}")
        counts = Counter(tok for text in data.inputs for tok in cls.split(text))
        words = [w for w, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])) if n >= min_count]
        return cls(vocab=("<pad>", "<unk>", *words[: max_size - 2]), max_length=max_length)

    @staticmethod
    def split(text: str) -> list[str]:
        return _TOKEN.findall(text.lower())

    def tokens(self, text: str) -> list[str]:
        """The tokens the model sees for `text` (after truncation)."""
        return self.split(text)[: self.max_length]

    def feature_names(self, data: Dataset | None = None) -> list[str]:
        return [f"token {i}" for i in range(self.max_length)]

    def encode(self, texts: Sequence[str]) -> torch.Tensor:
        index = self._index
        ids = np.zeros((len(texts), self.max_length), dtype=np.int64)
        for row, text in enumerate(texts):
            toks = self.tokens(text)
            ids[row, : len(toks)] = [index.get(t, self.UNK) for t in toks]
        return torch.from_numpy(ids)

    def transform(self, data: Dataset) -> torch.Tensor:
        if data.modality != "text":
            raise AuditInputError(f"{data.name}: the model reads text, the data is {data.modality}")
        return self.encode(list(data.inputs))

    def word_index(self, texts: Sequence[str]) -> np.ndarray:
        """(N, max_length): the word each position of `encode(texts)` holds, -1 for padding
        (`audit.core.words`); one position per word here."""
        index = np.full((len(texts), self.max_length), -1, dtype=np.int64)
        for row, text in enumerate(texts):
            n = len(self.tokens(text))
            index[row, :n] = np.arange(n)
        return index

    def input_config(self, data: Dataset) -> dict:
        return {"vocab_size": len(self.vocab), "max_length": self.max_length}

    @property
    def _index(self) -> dict[str, int]:
        cache = self.__dict__.get("_index_cache")
        if cache is None:
            cache = {w: i for i, w in enumerate(self.vocab)}
            object.__setattr__(self, "_index_cache", cache)
        return cache

    def to_dict(self) -> dict:
        return {"kind": self.kind, "vocab": list(self.vocab), "max_length": self.max_length}

    @classmethod
    def from_dict(cls, d: dict, where: str = "encoder") -> Tokenizer:
        vocab = tuple(check.strings(d["vocab"], f"{where}.vocab"))
        if vocab[:2] != ("<pad>", "<unk>"):
            raise AuditInputError(f"{where}.vocab must start with '<pad>', '<unk>'")
        return cls(vocab=vocab, max_length=check.integer(d["max_length"], f"{where}.max_length", high=MAX_TOKENS))


Encoder = TabularEncoder | ImageEncoder | Tokenizer
ENCODERS = {"tabular": TabularEncoder, "image": ImageEncoder, "text": Tokenizer}


def encoder_from_dict(d: dict, where: str = "encoder") -> Encoder:
    """An encoder from its `to_dict`, every field checked: a checkpoint is untrusted data."""
    check.mapping(d, where)
    kind = d.get("kind")
    if not isinstance(kind, str) or kind not in ENCODERS:
        raise check.fail(f"{where}.kind", f"one of {', '.join(ENCODERS)}", kind)
    try:
        return ENCODERS[kind].from_dict(d, where)
    except KeyError as exc:
        raise AuditInputError(f"{where}: field {exc} is missing") from None


def _is_numeric(col: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col)


def _numeric_values(frame: pd.DataFrame, columns: list[str], where: str) -> np.ndarray:
    for col in columns:
        if not _is_numeric(frame[col]):
            try:
                bad = frame[col][pd.to_numeric(frame[col], errors="coerce").isna()]
            except OverflowError:
                raise AuditInputError(f"{where}: column {col!r} holds a number too large for a float") from None
            raise AuditInputError(
                f"{where}: column {col!r} must be numeric, found {bad.iloc[0]!r}" if len(bad)
                else f"{where}: column {col!r} must be numeric, found dtype {frame[col].dtype}"
            )
    values = frame[columns].to_numpy(dtype=np.float64)
    _refuse_nonfinite(values, columns, where, "missing or infinite value(s)", "fill or drop them before auditing")
    return values


def _float32(values: np.ndarray, names: list[str], where: str) -> np.ndarray:
    """`values` as the model's float32 inputs, refusing any that overflow (1e308 is finite as a float64)."""
    with np.errstate(over="ignore"):
        out = values.astype(np.float32)
    _refuse_nonfinite(out, names, where, "value(s) too large for the model's float32 inputs once scaled",
                      "fix or drop them before auditing")
    return out


def _refuse_nonfinite(values: np.ndarray, names: list[str], where: str, problem: str, remedy: str) -> None:
    """One line naming the first column with a NaN or infinite value, how many it has and the first row."""
    bad = ~np.isfinite(values)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise AuditInputError(f"{where}: column {names[col]!r} has {int(bad[:, col].sum())} {problem} "
                              f"(first at row {row}); {remedy}")
