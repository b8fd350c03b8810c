"""`Model`: an `nn.Module` with its task, so analyzers never branch on architecture.

The task says what the model reads (modality, input encoder, tokenizer) and what it
predicts (classes). `Model` encodes a `Dataset` into the model's input space, runs
batched forward passes on its device, and keeps one prediction cache per instance.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from torch import nn

from audit import engine
from audit._util import validate as check
from audit.core.adapters import Logits
from audit.core.dataset import MODALITIES, Dataset
from audit.core.encoders import Encoder, ImageEncoder, TabularEncoder, Tokenizer, encoder_from_dict
from audit._util.errors import AuditInputError
from audit.core.postprocessing import GroupThresholds

#: What a model is for and not for, as its spec states them: untrusted text, shown inert on the model card.
USE_KEYS = ("intended_use", "out_of_scope")
MAX_USE_CHARS = 2000


def checked_use(d: Mapping, where: str) -> dict[str, str]:
    """The `USE_KEYS` that `d` (at `where`; "" for top-level keys) holds, each a string of at most
    `MAX_USE_CHARS` characters."""
    use = {}
    for key in (k for k in USE_KEYS if k in d):
        name = f"{where}.{key}" if where else key
        use[key] = check.string(d[key], name)
        if len(use[key]) > MAX_USE_CHARS:
            raise AuditInputError(f"{name} must be at most {MAX_USE_CHARS:,} characters, found {len(use[key]):,}")
    return use


@dataclass(frozen=True)
class Task:
    """What a model reads and predicts, plus where it came from; plain data only."""

    modality: str
    classes: tuple[str, ...]
    encoder: Encoder
    dataset: Mapping = field(default_factory=dict)
    sensitive: tuple[str, ...] = ()
    training: Mapping = field(default_factory=dict)
    metrics: Mapping = field(default_factory=dict)
    postprocessing: GroupThresholds | None = None  # decisions need its column at prediction time
    intended_use: str = ""  # "" when not stated
    out_of_scope: str = ""

    def use(self) -> dict[str, str]:
        """The intended and out-of-scope use that are stated (`USE_KEYS`)."""
        return {key: getattr(self, key) for key in USE_KEYS if getattr(self, key)}

    def to_dict(self) -> dict:
        extra = {"postprocessing": self.postprocessing.to_dict()} if self.postprocessing else {}
        extra.update(self.use())
        return {
            "modality": self.modality,
            "classes": list(self.classes),
            "encoder": self.encoder.to_dict(),
            "dataset": dict(self.dataset),
            "sensitive": list(self.sensitive),
            "training": dict(self.training),
            "metrics": dict(self.metrics),
            **extra,
        }

    @classmethod
    def from_dict(cls, d: Mapping, where: str = "task") -> Task:
        """A task from its `to_dict`, every field checked: it comes from an untrusted file."""
        check.mapping(d, where)
        missing = [k for k in ("modality", "classes", "encoder") if k not in d]
        if missing:
            raise AuditInputError(f"{where}: field(s) {', '.join(missing)} missing")
        modality = check.string(d["modality"], f"{where}.modality")
        if modality not in MODALITIES:
            raise check.fail(f"{where}.modality", f"one of {', '.join(MODALITIES)}", modality)
        classes = tuple(check.strings(d["classes"], f"{where}.classes"))
        if len(classes) < 2 or len(set(classes)) != len(classes):
            raise AuditInputError(f"{where}.classes must be at least two distinct names, found {len(classes)} "
                                  f"({len(set(classes))} distinct)")
        encoder = encoder_from_dict(d["encoder"], f"{where}.encoder")
        if encoder.kind != modality:
            raise AuditInputError(f"{where}: a {encoder.kind} encoder for a {modality} model")
        dataset = check.plain(d.get("dataset", {}), f"{where}.dataset")
        check.mapping(dataset, f"{where}.dataset")
        for key in ("builtin", "path", "target", "text_column"):
            if dataset.get(key) is not None:
                check.string(dataset[key], f"{where}.dataset.{key}")
        check.strings(dataset.get("sensitive") or [], f"{where}.dataset.sensitive")
        check.integer(dataset.get("split_seed", 0), f"{where}.dataset.split_seed", low=0)
        return cls(
            modality=modality,
            classes=classes,
            encoder=encoder,
            dataset=dataset,
            sensitive=tuple(check.strings(d.get("sensitive", []), f"{where}.sensitive")),
            training=check.mapping(check.plain(d.get("training", {}), f"{where}.training"), f"{where}.training"),
            metrics=check.mapping(check.plain(d.get("metrics", {}), f"{where}.metrics"), f"{where}.metrics"),
            postprocessing=(GroupThresholds.from_dict(d["postprocessing"], f"{where}.postprocessing")
                            if d.get("postprocessing") is not None else None),
            **checked_use(d, where),
        )


#: Forward passes per batch of the prediction map: a Ray task costs milliseconds, a pass of a small
#: model on `batch_size` rows a fraction of one (benchmarks/ray_engine.py).
FORWARDS_PER_TASK = 64


class Model:
    """A classifier over one modality: batched probabilities, gradients, embeddings."""

    def __init__(
        self,
        module: nn.Module,
        task: Task,
        *,
        architecture: str | None = None,
        config: Mapping | None = None,
        device: str | torch.device | None = None,
        batch_size: int = 512,
        source: Mapping | None = None,
    ):
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.module = module.to(self.device).eval()
        self.task = task
        self.architecture = architecture
        self.config = dict(config or {})
        self.batch_size = batch_size
        self.source = dict(source or {})
        self._proba_cache: dict[str, np.ndarray] = {}

    def __repr__(self) -> str:
        return f"Model({self.module_name!r}, modality={self.modality!r}, classes={list(self.classes)})"

    @property
    def module_name(self) -> str:
        """The registry architecture, or the class name of a wrapped module."""
        return self.architecture or self.source.get("wrapped") or type(self.module).__name__

    @property
    def modality(self) -> str:
        return self.task.modality

    @property
    def classes(self) -> tuple[str, ...]:
        return self.task.classes

    @property
    def encoder(self) -> Encoder:
        return self.task.encoder

    @property
    def embedding(self) -> nn.Embedding | None:
        """The token embedding layer of a text model (attributions are taken there)."""
        layer = getattr(self.module, "embedding", None)
        return layer if isinstance(layer, nn.Embedding) else None

    def feature_names(self, data: Dataset | None = None) -> list[str]:
        return self.encoder.feature_names(data)

    # -- input space ----------------------------------------------------------------------

    def encode(self, data: Dataset) -> torch.Tensor:
        """`data`'s inputs in the model's input space (on the CPU)."""
        if data.modality != self.modality:
            text_in_table = self.modality == "text" and data.modality == "tabular"
            raise AuditInputError(f"{data.name}: the model reads {self.modality} data, the data is {data.modality}"
                                  + ("; name its text column (--text-column)" if text_in_table else ""))
        return self.encoder.transform(data)

    def labels(self, data: Dataset) -> np.ndarray:
        """`data`'s labels as indices into the model's classes (matched by name)."""
        if tuple(data.classes) == self.classes:
            return data.labels
        index = {c: i for i, c in enumerate(self.classes)}
        unknown = [c for c in data.classes if c not in index]
        if unknown:
            raise AuditInputError(
                f"{data.source.get('path', data.name)}: labels {unknown[:5]} are not classes of the model "
                f"{list(self.classes)}"
            )
        return np.array([index[c] for c in data.classes], dtype=np.int64)[data.labels]

    # -- forward passes ---------------------------------------------------------------------

    def logits(self, x: torch.Tensor, *, grad: bool = False) -> torch.Tensor:
        """Logits for model-space inputs `x`, in batches; on the model's device when `grad`."""
        if grad:
            return self.module(x.to(self.device))
        rows = self.batch_size * FORWARDS_PER_TASK
        outs = list(engine.current().map(logits_batch, self, (x[s : s + rows] for s in range(0, len(x), rows))))
        if not outs:
            return torch.empty(0, len(self.classes))
        return torch.cat(outs)

    def __getstate__(self) -> dict:
        """What an engine's workers get: the module and task, without this process's prediction cache."""
        return {**self.__dict__, "_proba_cache": {}}

    def without_padding(self, x: torch.Tensor) -> torch.Tensor:
        """Text ids without trailing all-padding columns, where the module declares its output does not
        depend on them (`padding_invariant`); any other input unchanged."""
        if self.modality == "text" and getattr(self.module, "padding_invariant", False):
            return trim_padding(x, self.encoder.PAD)
        return x

    def proba(self, x: torch.Tensor) -> np.ndarray:
        """Class probabilities for model-space inputs; a model whose outputs are not finite numbers has
        failed, and is refused rather than scored."""
        logits = self.logits(x)
        where = f"{self.source['path']}: " if self.source.get("path") else ""
        if logits.ndim != 2 or logits.shape[1] != len(self.classes):
            raise AuditInputError(f"{where}the model outputs shape {tuple(logits.shape)}, expected "
                                  f"(rows, {len(self.classes)}) for its classes")
        failed = ~torch.isfinite(logits).all(dim=1)
        if failed.any():
            raise AuditInputError(
                f"{where}the model outputs NaN or infinite values for {int(failed.sum())} of {len(logits)} rows; "
                "a model that fails on its inputs cannot be audited"
            )
        return torch.softmax(logits, dim=-1).numpy().astype(np.float64)

    def predict_proba(self, data, *, cache: bool = True) -> np.ndarray:
        """Class probabilities (N, classes) for a `Dataset`, or raw inputs: a DataFrame, an
        array, a tensor in the model's input space, or a list of strings for text. Those of a
        `Dataset` are kept for the next call unless not to `cache` (a streamed chunk is seen once).

        A model with group thresholds (`task.postprocessing`) gives its decisions instead, as 0 or 1,
        so every analyzer judges what is deployed; `proba` and `logits` stay the scores."""
        if isinstance(data, Dataset) and not cache:
            return self._decided(self.proba(self.encode(data)), data)
        if isinstance(data, Dataset):
            key = data.sha256
            if key not in self._proba_cache:
                self._proba_cache[key] = self._decided(self.proba(self.encode(data)), data)
            return self._proba_cache[key]
        return self._decided(self.proba(self._as_input(data)), data)

    def _decided(self, proba: np.ndarray, data) -> np.ndarray:
        rule = self.task.postprocessing
        if rule is None:
            return proba
        frame = data.sensitive if isinstance(data, Dataset) else None
        if frame is None or rule.column not in frame.columns:
            frame = data.inputs if isinstance(data, Dataset) else data
        if not isinstance(frame, pd.DataFrame) or rule.column not in frame.columns:
            where = data.source.get("path", data.name) if isinstance(data, Dataset) else "the inputs"
            raise AuditInputError(
                f"{where}: the model applies group thresholds by {rule.column!r} and needs that column at "
                f"prediction time; the data has no column {rule.column!r} (CLI: --sensitive {rule.column})")
        return rule.decide(proba, frame[rule.column].reset_index(drop=True))

    def predict(self, data) -> np.ndarray:
        return self.predict_proba(data).argmax(axis=1)

    def _as_input(self, raw) -> torch.Tensor:
        if isinstance(raw, torch.Tensor):
            return raw
        if self.modality == "text":
            texts = [raw] if isinstance(raw, str) else list(raw)
            return self.encoder.encode(texts)
        if isinstance(raw, pd.DataFrame):
            placeholder = np.zeros(len(raw), dtype=np.int64)
            return self.encode(Dataset(raw.reset_index(drop=True), placeholder, self.classes, "tabular"))
        x = np.asarray(raw, dtype=np.float32)
        if self.modality == "image" and x.ndim == 3:
            x = x[:, None]
        return torch.from_numpy(x)

    def input_gradients(self, x: torch.Tensor, target: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Gradient of the target-class logit with respect to continuous model-space inputs."""
        x = x.detach().to(self.device).requires_grad_(True)
        target = torch.as_tensor(target, device=self.device).long()
        out = self.module(x)
        grad, = torch.autograd.grad(out.gather(1, target[:, None]).sum(), x)
        return grad.cpu()


def logits_batch(model: Model, x: torch.Tensor) -> torch.Tensor:
    """Logits of model-space inputs, on the CPU, in forward passes of `batch_size` rows (the prediction
    map's batch function: its batches are FORWARDS_PER_TASK passes long)."""
    outs = []
    with torch.inference_mode():
        for start in range(0, len(x), model.batch_size):
            batch = model.without_padding(x[start : start + model.batch_size])
            outs.append(model.module(batch.to(model.device)).float().cpu())
    return torch.cat(outs)


def trim_padding(ids: torch.Tensor, pad: int = Tokenizer.PAD) -> torch.Tensor:
    """Token ids without the trailing columns that are padding in every row (same predictions, less work)."""
    used = (ids != pad).any(dim=0).nonzero()
    return ids[:, : int(used.max()) + 1] if len(used) else ids[:, :1]


def wrap(
    module: nn.Module,
    *,
    modality: str,
    classes: Sequence[str],
    feature_names: Sequence[str] | None = None,
    tokenizer: Tokenizer | None = None,
    encoder: Encoder | None = None,
    layout: str = "NCHW",
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    input_shape: Sequence[int] | None = None,
    extra_inputs: Callable[[torch.Tensor], Mapping[str, torch.Tensor]] | None = None,
    device: str | None = None,
    batch_size: int = 512,
) -> Model:
    """A `Model` for a user's own `nn.Module` of any architecture.

    Tables: the module reads float features in the data's column order (or `encoder`'s).
    Images: the data are (N, C, H, W) pixels; a module that reads channels-last images
    declares `layout="NHWC"`, one that reads normalised pixels gives the per-channel `mean`
    and `std` (applied inside the model, so attacks and attributions stay in pixel space),
    and `input_shape=(C, H, W)` refuses data of another shape in one line. Text: token ids
    from `tokenizer`; the module's token embedding should be its attribute `embedding` (or
    `get_input_embeddings()`) for token attributions. The module may return logits, a tuple
    starting with them, a dict with "logits" or an object with `.logits`; `extra_inputs`
    maps a batch of inputs to further keyword arguments of `forward` (e.g. an attention
    mask computed from the token ids).
    """
    if encoder is None:
        if modality == "tabular":
            encoder = TabularEncoder(numeric=tuple(feature_names or ()), passthrough=True)
        elif modality == "image":
            encoder = ImageEncoder(shape=tuple(int(s) for s in input_shape) if input_shape else None)
        elif modality == "text":
            if tokenizer is None:
                raise AuditInputError("wrap(modality='text') needs tokenizer=audit.Tokenizer.fit(train_data)")
            encoder = tokenizer
        else:
            raise AuditInputError(f"unknown modality {modality!r}; expected tabular, image or text")
    task = Task(modality=modality, classes=tuple(str(c) for c in classes), encoder=encoder)
    adapted = Logits(module, layout=layout, mean=mean, std=std, extra_inputs=extra_inputs)
    return Model(adapted, task, device=device, batch_size=batch_size, source={"wrapped": type(module).__name__})
