"""Hugging Face sequence classifiers as audit models.

`from_transformers(model, tokenizer)` makes a `Model` of a loaded `...ForSequenceClassification`
and its fast tokenizer; `load_pretrained(directory)` loads a `save_pretrained` folder (config,
safetensors weights, tokenizer files) offline, and is what `audit report DIRECTORY` uses.

Analyzers see words, not subwords. `SubwordTokenizer.tokens(text)` are the words the
tokenizer's pre-tokenizer finds (its `word_ids()`), cut from the text by their offsets, and
`word_index` maps each subword position to its word (`audit.core.words`): attributions are
taken at `get_input_embeddings()` per subword and summed per word; SHAP, LIME, the
faithfulness curves and the attacks' word ranking hide a word by one [UNK] in its place (its
further subwords dropped), as our `Tokenizer` reads a word outside its vocabulary. [UNK], not
[MASK] or [PAD]: the hidden word keeps its place in the text, as with our `Tokenizer`; a
fine-tuned classifier has seen [UNK] in its inputs (characters outside the vocabulary) but
[MASK] only in pre-training; and [PAD] would take the word out of the attention mask, a text
without it rather than with an unknown word. One [UNK], not one per subword: a word of seven
subwords then changes the input no more than a word of one (with one per subword, a long rare
word stood out in a control model's SHAP and LIME ranking more often). Gradient
methods start from the text with every word token set to [PAD] and [CLS]/[SEP] kept, the
usual baseline for BERT-style models. The attention mask is computed from the ids inside the
forward pass (`AttentionMask`), so attributions and attacks still pass ids alone.

Loading never runs code from the folder: `trust_remote_code` is never set, a config that
names custom code (`auto_map`) or a model type transformers does not know is refused, and
pickled weights (`pytorch_model.bin`) are refused unless the caller trusts the folder.
transformers is an optional extra, imported only here and only when a model is made.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from audit.core.adapters import Logits
from audit.io import hf_files
from audit.io.checkpoint import TRUST, file_sha256
from audit.io.limits import MAX_PARAMETERS
from audit.core.dataset import Dataset
from audit.core.encoders import MAX_TOKENS
from audit._util.distribution import install_hint
from audit._util.errors import AuditInputError, UnsafeCheckpointError
from audit.core.model import Model, Task
from audit._util.paths import shown

INSTALL = f"Hugging Face models need the transformers extra: {install_hint('transformers')}"
DEFAULT_MAX_LENGTH = 512  # subwords per text when neither the tokenizer nor the config sets a limit
DEFAULT_BATCH_SIZE = 32  # texts per forward pass: attention memory grows with length squared
SAFETENSORS = ("model.safetensors", "model.safetensors.index.json")
PICKLED = ("pytorch_model.bin", "pytorch_model.bin.index.json")


def transformers():
    """The transformers module, or one line saying how to install it."""
    try:
        import transformers as module
    except ImportError:
        raise AuditInputError(INSTALL) from None
    return module


class AttentionMask:
    """`extra_inputs` of a Hugging Face model: the attention mask of a batch of ids (1 where not padding)."""

    def __init__(self, pad: int):
        self.pad = pad

    def __call__(self, ids: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"attention_mask": (ids != self.pad).long()}


@dataclass(frozen=True, eq=False)
class SubwordTokenizer:
    """A Hugging Face fast tokenizer as a text encoder: subword ids for the model, words for the analyzers.

    `encode` pads every text to `max_length` subwords (special tokens included) with the pad id on
    the right; `tokens(text)` are the words of the text that fit."""

    tokenizer: object
    max_length: int
    kind = "text"

    def __post_init__(self):
        tok = self.tokenizer
        if not getattr(tok, "is_fast", False):
            raise AuditInputError(f"{type(tok).__name__} is a slow (Python) tokenizer; words are grouped with a "
                                  "fast one (tokenizers library): load it with AutoTokenizer (use_fast=True)")
        if self.max_length <= tok.num_special_tokens_to_add():
            raise AuditInputError(f"a text of {self.max_length} subwords has no room for a word beside the "
                                  f"{tok.num_special_tokens_to_add()} special tokens; raise the tokenizer's "
                                  "model_max_length")
        for name in ("pad", "unk"):
            if getattr(tok, f"{name}_token_id") is None:
                raise AuditInputError(f"the tokenizer has no {name} token; audit needs one to pad texts and to hide "
                                      "words (set tokenizer.pad_token / unk_token)")

    @property
    def PAD(self) -> int:  # noqa: N802 - the same name as Tokenizer.PAD
        return int(self.tokenizer.pad_token_id)

    @property
    def UNK(self) -> int:  # noqa: N802 - the same name as Tokenizer.UNK
        return int(self.tokenizer.unk_token_id)

    @property
    def markers(self) -> tuple[int, ...]:
        """Ids of the special tokens that frame the words ([CLS], [SEP]): every special token but padding, the
        unknown token and the mask token."""
        tok = self.tokenizer
        return tuple(sorted(set(tok.all_special_ids) - {tok.pad_token_id, tok.unk_token_id, tok.mask_token_id}))

    @property
    def vocab(self) -> tuple[str, ...]:
        """The tokenizer's tokens by id (subwords like "##ing" among them)."""
        cache = self.__dict__.get("_vocab")
        if cache is None:
            cache = tuple(self.tokenizer.convert_ids_to_tokens(list(range(len(self.tokenizer)))))
            object.__setattr__(self, "_vocab", cache)
        return cache

    def _encodings(self, texts: Sequence[str]):
        return self.tokenizer(list(texts), padding="max_length", truncation=True, max_length=self.max_length,
                              padding_side="right", return_offsets_mapping=True, return_attention_mask=False,
                              return_token_type_ids=False)

    def encode(self, texts: Sequence[str]) -> torch.Tensor:
        if not len(texts):
            return torch.zeros((0, self.max_length), dtype=torch.long)
        return torch.tensor(self._encodings(texts)["input_ids"], dtype=torch.long)

    def transform(self, data: Dataset) -> torch.Tensor:
        if data.modality != "text":
            raise AuditInputError(f"{data.name}: the model reads text, the data is {data.modality}")
        return self.encode(list(data.inputs))

    def word_index(self, texts: Sequence[str]) -> np.ndarray:
        index = np.full((len(texts), self.max_length), -1, dtype=np.int64)
        if len(texts):
            encodings = self._encodings(texts)
            for row in range(len(texts)):
                index[row] = _numbered(encodings.word_ids(row))
        return index

    def tokens(self, text: str) -> list[str]:
        """The words of `text` the model sees (after truncation), as written in the text."""
        encoding = self._encodings([text])
        spans: dict[int, list[int]] = {}
        for word, (start, end) in zip(_numbered(encoding.word_ids(0)), encoding["offset_mapping"][0]):
            if word >= 0:
                span = spans.setdefault(int(word), [start, end])
                span[0], span[1] = min(span[0], start), max(span[1], end)
        return [text[start:end] for start, end in spans.values()]

    def feature_names(self, data: Dataset | None = None) -> list[str]:
        return [f"word {i}" for i in range(self.max_length)]

    def to_dict(self) -> dict:
        raise AuditInputError("a Hugging Face model is saved as its own directory (save_pretrained), not as an "
                              "audit checkpoint")


def _numbered(word_ids: list[int | None]) -> np.ndarray:
    """Word numbers 0, 1, ... in order of appearance (-1 for special tokens and padding)."""
    out, seen = np.full(len(word_ids), -1, dtype=np.int64), {}
    for pos, word in enumerate(word_ids):
        if word is not None:
            out[pos] = seen.setdefault(word, len(seen))
    return out


def from_transformers(model: nn.Module, tokenizer, *, classes: Sequence[str] | None = None,
                      max_length: int | None = None, device: str | None = None,
                      batch_size: int = DEFAULT_BATCH_SIZE, source: dict | None = None) -> Model:
    """A `Model` of a Hugging Face sequence classifier and its fast tokenizer.

    `classes`: the class names in output order (default: the config's `id2label`); `max_length`:
    subwords per text (default: the tokenizer's limit, else the model's position embeddings)."""
    transformers()
    if not isinstance(model, nn.Module) or not hasattr(model, "get_input_embeddings"):
        raise AuditInputError(f"from_transformers needs a transformers model (a torch module with "
                              f"get_input_embeddings), found {type(model).__name__}")
    config = getattr(model, "config", None)
    if classes is None:
        labels = dict(getattr(config, "id2label", None) or {})
        classes = [str(labels[i]) for i in sorted(labels, key=int)]
    if len(classes) < 2 or len(set(classes)) != len(classes):
        raise AuditInputError(f"from_transformers needs at least two distinct class names (config.id2label or "
                              f"classes=), found {list(classes)}")
    encoder = SubwordTokenizer(tokenizer, max_length or _max_length(tokenizer, config))
    task = Task(modality="text", classes=tuple(str(c) for c in classes), encoder=encoder)
    adapted = Logits(model, extra_inputs=AttentionMask(encoder.PAD))
    adapted.padding_invariant = True  # masked positions change nothing: trailing padding is cut before a pass
    return Model(adapted, task, device=device, batch_size=batch_size,
                 source={"wrapped": type(model).__name__, **(source or {})})


def _max_length(tokenizer, config) -> int:
    limits = [n for n in (getattr(tokenizer, "model_max_length", None),
                          getattr(config, "max_position_embeddings", None))
              if isinstance(n, int) and 0 < n <= MAX_TOKENS]
    return min(limits) if limits else DEFAULT_MAX_LENGTH


def load_pretrained(path: str | Path, *, trust_code: bool = False, device: str | None = None,
                    max_parameters: int = MAX_PARAMETERS) -> Model:
    """A `Model` from a `save_pretrained` directory of a sequence classifier and its tokenizer, loaded
    offline; pickled weights only with `trust_code`. Every file transformers would read is checked first as
    plain data (`audit.io.hf_files`); whatever transformers, tokenizers or safetensors still raise is one line."""
    path = Path(path)
    name = shown(path)
    if not (path / "config.json").is_file():
        raise AuditInputError(f"{name}: is a directory without config.json, so not a Hugging Face model "
                              "directory (save_pretrained) either; give a model checkpoint file")
    config = hf_files.read_json(path / "config.json", name)
    tokenizer_file = path / "tokenizer_config.json"
    tokenizer_config = hf_files.read_json(tokenizer_file, name) if tokenizer_file.is_file() else {}
    for file, found in (("config.json", config), ("tokenizer_config.json", tokenizer_config)):
        if not isinstance(found, dict):
            raise AuditInputError(f"{name}: {file} holds a {type(found).__name__}, expected an object")
        if "auto_map" in found:
            raise UnsafeCheckpointError(f"{name}: {file} names custom code (auto_map), which would run when the model "
                                        "is loaded; audit never runs a model folder's code (trust_remote_code)")
    declared = hf_files.config(config, name)
    tf = transformers()
    model_type = config["model_type"]
    if model_type not in tf.CONFIG_MAPPING:
        raise UnsafeCheckpointError(f"{name}: model_type {model_type!r} is not one transformers knows; it would need "
                                    "the folder's own code (trust_remote_code), which audit never runs")
    architectures = config.get("architectures") or []
    if not any(a.endswith("ForSequenceClassification") for a in architectures):
        raise AuditInputError(f"{name}: config.json declares {', '.join(architectures) or 'no architecture'}"
                              ", not a sequence classifier (...ForSequenceClassification)")
    estimate = declared.parameters()
    if estimate > max_parameters:
        raise AuditInputError(f"{name}: config.json describes about {estimate:,} parameters, over the limit of "
                              f"{max_parameters:,} (raise it with --max-parameters)")
    weights = [f for f in SAFETENSORS if (path / f).is_file()]
    if not weights:
        if not any((path / f).is_file() for f in PICKLED):
            raise AuditInputError(f"{name}: no model weights (expected {SAFETENSORS[0]})")
        if not trust_code:
            raise UnsafeCheckpointError(f"{name}: the weights are pickled ({PICKLED[0]}), which can run arbitrary "
                                        f"code when loaded; nothing was loaded. {TRUST}, or save the model with "
                                        "safetensors (save_pretrained's default)")
    else:
        tensors = hf_files.shapes(path, weights[0], name)
        count = sum(math.prod(shape) for shape in tensors.values())
        if count > max_parameters:
            raise AuditInputError(f"{name}: {count:,} parameters, over the limit of {max_parameters:,} "
                                  "(raise it with --max-parameters)")
        hf_files.matched(declared, tensors, name)
    hf_files.tokenizer(path, declared.sizes["vocab_size"], name)
    hf_files.special_tokens(tokenizer_config, name)
    single = path / SAFETENSORS[0]
    source = {"path": name, "sha256": file_sha256(single) if single.is_file() else None}
    with _quiet(tf) as said:
        try:
            model, info = tf.AutoModelForSequenceClassification.from_pretrained(
                path, local_files_only=True, use_safetensors=bool(weights), output_loading_info=True)
            missing = list(info.get("missing_keys") or [])
            if missing:
                raise AuditInputError(f"{name}: the weights lack {len(missing)} tensor(s) of {architectures[0]} "
                                      f"(first: {sorted(missing)[0]}); those would be random")
            tokenizer = tf.AutoTokenizer.from_pretrained(path, local_files_only=True)
            tokenizer(["a b"], padding="max_length", max_length=8, truncation=True)  # a broken template fails here
            top, rows = max(tokenizer.get_vocab().values()), model.get_input_embeddings().num_embeddings
            if top >= rows:
                raise AuditInputError(f"{name}: the tokenizer has token ids up to {top}, beyond the model's "
                                      f"vocabulary of {rows} (a special token that is not in the vocabulary is "
                                      "added with a new id)")
            # the Model is made here too: its special token ids are the tokenizer's first lookups
            return from_transformers(model.float(), tokenizer, device=device, source=source)
        except (AuditInputError, MemoryError, KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:  # noqa: BLE001 - a library meeting a bad file raises anything at all, and
            # tokenizers' Rust panics arrive as pyo3's PanicException, a BaseException
            raise AuditInputError(f"{name}: transformers could not load it: {_first_line(exc)}{said()}") from None


@contextlib.contextmanager
def _quiet(tf):
    """Library output while loading (stderr, transformers' log, warnings, progress bars) kept from the user's
    terminal; yields a function that summarises what was said, for the one line of a refusal."""
    buffer = io.StringIO()
    logger = tf.utils.logging.get_logger()
    handlers, propagate = logger.handlers[:], logger.propagate
    logger.handlers, logger.propagate = [logging.StreamHandler(buffer)], False
    was_enabled = tf.utils.logging.is_progress_bar_enabled()
    tf.utils.logging.disable_progress_bar()  # audit reports its own progress
    try:
        with contextlib.redirect_stderr(buffer), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield lambda: _summary(buffer.getvalue())
    finally:
        logger.handlers, logger.propagate = handlers, propagate
        if was_enabled:
            tf.utils.logging.enable_progress_bar()


def _summary(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return ""
    more = f" (and {len(lines) - 1} more line(s))" if len(lines) > 1 else ""
    return f"; the library said: {lines[0][:200]}{more}"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
