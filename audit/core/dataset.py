"""`Dataset`: inputs, labels, sensitive attributes and descriptive attributes, kept apart.

Sensitive attributes live in their own DataFrame. For tables the input frame may
hold the same columns too; a model only ever reads the columns its encoder was
fitted on, so a sensitive column reaches a model only if it was trained on it.

Descriptive attributes are the other columns a data file carries beside the inputs,
the label and the sensitive columns (an image folder's metadata.csv columns, a text
table's other columns): never a model input and never a fairness group, but places
the slice search looks. A table's other columns are its inputs, so it has none.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property

import numpy as np
import pandas as pd

from audit._util.errors import AuditInputError

MODALITIES = ("tabular", "image", "text")


@dataclass(frozen=True, eq=False)
class Dataset:
    """Inputs with integer labels into `classes`, and sensitive and descriptive attributes beside them.

    `inputs` is a DataFrame for tables, a float32 array (N, C, H, W) for images,
    and an object array of strings for text.
    """

    inputs: pd.DataFrame | np.ndarray
    labels: np.ndarray
    classes: tuple[str, ...]
    modality: str
    sensitive: pd.DataFrame = field(default_factory=pd.DataFrame)
    name: str = "data"
    target: str = "label"
    source: dict = field(default_factory=dict)
    attributes: pd.DataFrame = field(default_factory=pd.DataFrame)

    def __post_init__(self):
        if self.modality not in MODALITIES:
            raise AuditInputError(f"unknown modality {self.modality!r}; expected one of {', '.join(MODALITIES)}")
        n = len(self.inputs)
        if len(self.labels) != n:
            raise AuditInputError(f"{self.name}: {n} inputs but {len(self.labels)} labels")
        if len(self.sensitive.columns) and len(self.sensitive) != n:
            raise AuditInputError(f"{self.name}: {n} inputs but {len(self.sensitive)} rows of sensitive attributes")
        if len(self.attributes.columns) and len(self.attributes) != n:
            raise AuditInputError(f"{self.name}: {n} inputs but {len(self.attributes)} rows of attributes")

    def __len__(self) -> int:
        return len(self.labels)

    def __repr__(self) -> str:
        sensitive = ", ".join(self.sensitive.columns) or "none"
        return (
            f"Dataset({self.name!r}, modality={self.modality!r}, rows={len(self)}, "
            f"classes={list(self.classes)}, sensitive=[{sensitive}])"
        )

    @property
    def sensitive_names(self) -> tuple[str, ...]:
        return tuple(self.sensitive.columns)

    @property
    def texts(self) -> list[str]:
        if self.modality != "text":
            raise AttributeError("texts exist only for text datasets")
        return list(self.inputs)

    @cached_property
    def sha256(self) -> str:
        """Content hash of inputs, labels, classes and sensitive attributes (not the descriptive ones, which no
        prediction or fairness figure reads)."""
        h = hashlib.sha256()
        h.update(self.modality.encode())
        h.update("\x00".join(self.classes).encode())
        h.update(np.ascontiguousarray(self.labels, dtype=np.int64).tobytes())
        _hash_frame_into(h, self.sensitive)
        if isinstance(self.inputs, pd.DataFrame):
            _hash_frame_into(h, self.inputs)
        elif self.modality == "text":
            h.update("\x00".join(self.inputs).encode())
        else:
            h.update(str(self.inputs.shape).encode())
            h.update(np.ascontiguousarray(self.inputs).tobytes())
        return h.hexdigest()

    def subset(self, indices) -> Dataset:
        idx = np.asarray(indices, dtype=np.int64)
        if isinstance(self.inputs, pd.DataFrame):
            inputs = self.inputs.iloc[idx].reset_index(drop=True)
        else:
            inputs = self.inputs[idx]
        return replace(self, inputs=inputs, labels=self.labels[idx], sensitive=_rows(self.sensitive, idx),
                       attributes=_rows(self.attributes, idx))

    def sample(self, n: int | None, *, seed: int = 0) -> Dataset:
        """At most `n` rows drawn without replacement (all rows, in order, when n is None or >= len)."""
        if n is None or n >= len(self):
            return self
        rng = np.random.default_rng(seed)
        return self.subset(np.sort(rng.choice(len(self), size=n, replace=False)))

    def split(self, fractions: Sequence[float], *, seed: int) -> list[Dataset]:
        """Seeded stratified split into parts of the given fractions (they sum to 1)."""
        rng = np.random.default_rng(seed)
        parts: list[list[int]] = [[] for _ in fractions]
        bounds = np.cumsum(fractions)[:-1]
        for label in np.unique(self.labels):
            members = rng.permutation(np.flatnonzero(self.labels == label))
            for part, chunk in zip(parts, np.split(members, np.round(bounds * len(members)).astype(int))):
                part.extend(chunk.tolist())
        return [self.subset(np.sort(np.array(part, dtype=int))) for part in parts]

    # -- constructors -------------------------------------------------------------------

    @classmethod
    def from_dataframe(
        cls,
        frame: pd.DataFrame,
        *,
        target: str,
        sensitive: Sequence[str] = (),
        text_column: str | None = None,
        classes: Sequence[str] | None = None,
        name: str = "data",
        source: dict | None = None,
    ) -> Dataset:
        """A table (or, with `text_column`, a text dataset) from a DataFrame.

        Every column but the target is a candidate model input; `sensitive` columns are
        also copied into `sensitive`. Of text, the columns other than the text, the target
        and the sensitive ones are its descriptive `attributes` (missing values allowed).
        """
        where = (source or {}).get("path", name)
        if len(frame) == 0:
            raise AuditInputError(f"{where}: no rows (the table is empty)")
        columns = [str(c) for c in frame.columns]
        for names, what in ((columns, "has columns"), (list(sensitive), "--sensitive names")):
            twice = sorted({c for c in names if names.count(c) > 1})
            if twice:
                raise AuditInputError(f"{where}: {what} {', '.join(map(repr, twice))} more than once")
        frame = frame.set_axis(columns, axis=1).reset_index(drop=True)
        roles = [("--target", target), ("--text-column", text_column), *[("--sensitive", s) for s in sensitive]]
        for role, col in roles:
            if col is not None and col not in columns:
                raise AuditInputError(f"{where}: column {col!r} ({role}) not found; columns are: {', '.join(columns)}")
        labels, classes = _encode_labels(frame[target], classes, where=f"{where}: target column {target!r}")
        sens = frame[list(sensitive)].copy()
        for col in sens.columns:
            require_complete(sens[col], f"{where}: sensitive column {col!r}")
        if text_column is not None:
            texts = frame[text_column]
            require_complete(texts, f"{where}: text column {text_column!r}")
            inputs = np.array([str(t) for t in texts], dtype=object)
            modality = "text"
            carried = [c for c in columns if c not in {target, text_column, *sensitive}]
            attributes = frame[carried].copy()
        else:
            inputs = frame.drop(columns=[target])
            for col in inputs.columns:
                require_complete(inputs[col], f"{where}: column {col!r}")
            modality = "tabular"
            attributes = pd.DataFrame()
        return cls(inputs=inputs, labels=labels, classes=classes, modality=modality, sensitive=sens,
                   name=name, target=target, source=source or {}, attributes=attributes)

    @classmethod
    def from_arrays(
        cls,
        x,
        y,
        *,
        sensitive: pd.DataFrame | dict | None = None,
        attributes: pd.DataFrame | dict | None = None,
        classes: Sequence[str] | None = None,
        feature_names: Sequence[str] | None = None,
        modality: str | None = None,
        layout: str = "NCHW",
        name: str = "data",
        source: dict | None = None,
    ) -> Dataset:
        """From arrays: x of shape (N, F) for tables, (N, H, W), (N, C, H, W) or, with
        `layout="NHWC"`, (N, H, W, C) for images, or a sequence of strings for text.

        y has shape (N,): class names, or integers that index `classes` when it is given
        (sklearn's `target_names[y]`). Pass the model's classes to audit a slice that holds
        fewer classes than the model predicts (e.g. only one). `attributes`: descriptive
        columns of the rows (N,), which the slice search looks at.
        """
        where = (source or {}).get("path", name)
        if modality == "text" or (modality is None and len(x) and isinstance(x[0], str)):
            inputs = np.array([str(t) for t in x], dtype=object)
            modality = "text"
        else:
            x = np.asarray(x)
            if modality is None:
                modality = "tabular" if x.ndim == 2 else "image"
            if modality == "tabular":
                if x.ndim != 2:
                    raise AuditInputError(f"{where}: tabular x must have shape (N, F), found {x.shape}")
                names = list(feature_names) if feature_names is not None else [f"x{i}" for i in range(x.shape[1])]
                if len(names) != x.shape[1]:
                    raise AuditInputError(f"{where}: {len(names)} feature names for {x.shape[1]} columns")
                inputs = pd.DataFrame(x, columns=names)
            else:
                x = _channels_first(x, layout, where)
                if x.dtype.kind not in "biuf":
                    raise AuditInputError(f"{where}: images x must be real numbers, found dtype {x.dtype}")
                with np.errstate(over="ignore"):
                    inputs = x.astype(np.float32)
                bad = ~np.isfinite(inputs)
                if bad.any():
                    raise AuditInputError(
                        f"{where}: images x hold {int(bad.sum())} NaN, infinite or float32-overflowing value(s) "
                        f"(first in image {int(np.argwhere(bad)[0][0])}); replace them first"
                    )
        y = np.asarray(y)
        if y.ndim != 1:
            raise AuditInputError(f"{where}: labels y must have shape (N,), found {y.shape}")
        if len(y) != len(inputs):
            raise AuditInputError(f"{where}: x has {len(inputs)} rows but y has {len(y)}")
        if len(y) == 0:
            raise AuditInputError(f"{where}: no rows (the arrays are empty)")
        if classes is not None and y.dtype.kind in "iu":
            labels, classes = _index_labels(y, classes, where=f"{where}: labels y")
        else:
            labels, classes = _encode_labels(pd.Series(y), classes, where=f"{where}: labels y")
        frames = {}
        for what, given in (("sensitive attributes", sensitive), ("attributes", attributes)):
            frame = pd.DataFrame(given if given is not None else {})
            if len(frame.columns) and len(frame) != len(y):
                raise AuditInputError(f"{where}: {what} have {len(frame)} rows, expected {len(y)}")
            frames[what] = frame.reset_index(drop=True)
        return cls(inputs=inputs, labels=labels, classes=classes, modality=modality,
                   sensitive=frames["sensitive attributes"], name=name, source=source or {},
                   attributes=frames["attributes"])


def concat(parts: Sequence[Dataset]) -> Dataset:
    """The rows of `parts` (chunks of one data set) in one `Dataset`."""
    first = parts[0]
    if isinstance(first.inputs, pd.DataFrame):
        inputs = pd.concat([p.inputs for p in parts], ignore_index=True)
    else:
        inputs = np.concatenate([p.inputs for p in parts])
    return replace(first, inputs=inputs, labels=np.concatenate([p.labels for p in parts]),
                   sensitive=_stacked([p.sensitive for p in parts]),
                   attributes=_stacked([p.attributes for p in parts]))


def _rows(frame: pd.DataFrame, idx: np.ndarray) -> pd.DataFrame:
    """The rows `idx` of a frame of attributes (a frame without columns as it is)."""
    return frame.iloc[idx].reset_index(drop=True) if len(frame.columns) else frame


def _stacked(frames: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """Frames of attributes of consecutive chunks, one after the other."""
    return pd.concat(frames, ignore_index=True) if len(frames[0].columns) else frames[0]


def _channels_first(x: np.ndarray, layout: str, where: str) -> np.ndarray:
    """Images as (N, C, H, W), from (N, H, W) or the declared 4-d `layout`."""
    if layout not in ("NCHW", "NHWC"):
        raise AuditInputError(f"{where}: layout must be 'NCHW' or 'NHWC', found {layout!r}")
    if x.ndim == 3:
        return x[:, None]
    if x.ndim != 4:
        four = "(N, C, H, W)" if layout == "NCHW" else "(N, H, W, C)"
        raise AuditInputError(f"{where}: images x must have shape (N, H, W) or {four}, found {tuple(x.shape)}")
    if layout == "NHWC":
        return x.transpose(0, 3, 1, 2)
    if x.shape[1] > 4 and x.shape[3] <= 4:
        raise AuditInputError(
            f"{where}: images x of shape {tuple(x.shape)} look channels-last ({x.shape[3]} channels of "
            f"{x.shape[1]}x{x.shape[2]} pixels); pass layout='NHWC', or transpose them to (N, C, H, W)")
    return x


def _index_labels(y: np.ndarray, classes: Sequence[str], *, where: str) -> tuple[np.ndarray, tuple[str, ...]]:
    classes = _class_names(classes, where)
    outside = np.unique(y[(y < 0) | (y >= len(classes))])
    if len(outside):
        raise AuditInputError(f"{where} holds class indices {outside[:5].tolist()} outside 0..{len(classes) - 1} "
                              f"for the {len(classes)} classes {list(classes)}")
    return y.astype(np.int64), classes


def _class_names(classes: Sequence[str], where: str) -> tuple[str, ...]:
    names = tuple(str(c) for c in classes)
    if len(set(names)) != len(names):
        raise AuditInputError(f"{where}: the classes {list(names)} name a class more than once")
    if len(names) < 2:
        raise AuditInputError(
            f"{where} has a single class {list(names)}; at least two are needed. To audit a slice of one "
            "class, pass the model's classes (classes=model.classes)")
    return names


def _hash_frame_into(h, frame: pd.DataFrame) -> None:
    h.update("\x00".join(map(str, frame.columns)).encode())
    if len(frame.columns):
        h.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())


def require_complete(column: pd.Series, what: str, *, first_row: int = 0) -> None:
    """Refuse a column with missing values, naming their rows (counted from `first_row`, for a chunk of a file)."""
    missing = column.isna()
    if missing.any():
        rows = ", ".join(str(first_row + i) for i in np.flatnonzero(missing.to_numpy())[:5])
        raise AuditInputError(
            f"{what} has {int(missing.sum())} missing value(s) (rows {rows}{', ...' if missing.sum() > 5 else ''}); "
            "fill them (e.g. df[col].fillna(...)) or drop those rows (df.dropna()) before auditing"
        )


def found_classes(labels: pd.Series, *, where: str) -> tuple[str, ...]:
    """The classes a label column holds, in the sorted order of its values (of their text where they do not
    sort); refused when a label is missing or fewer than two classes are found."""
    require_complete(labels, where)
    unique = pd.unique(labels)
    try:
        ordered = sorted(unique)
    except TypeError:
        ordered = sorted(unique, key=str)
    return _class_names(tuple(dict.fromkeys(str(v).strip() for v in ordered)), where)


def _encode_labels(values: pd.Series, classes: Sequence[str] | None, *,
                   where: str) -> tuple[np.ndarray, tuple[str, ...]]:
    if classes is None:
        classes = found_classes(values, where=where)
    else:
        require_complete(values, where)
        classes = _class_names(classes, where)
    names = values.astype(str).str.strip().to_numpy()
    index = {c: i for i, c in enumerate(classes)}
    unknown = sorted(set(names) - set(index))
    if unknown:
        raise AuditInputError(f"{where} has values {unknown[:5]} outside the classes {list(classes)}")
    return np.array([index[n] for n in names], dtype=np.int64), classes
