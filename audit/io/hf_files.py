"""The files of a Hugging Face model folder checked as plain data, before transformers reads any of them.

JSON is read with a size and a nesting-depth limit (a deeply nested file would exhaust the recursion limit
of the parser or of transformers' own walks) and without NaN, Infinity or numbers too large for a float.
`config(...)` checks the fields transformers builds the model from (types, ranges, heads dividing the hidden
size, labels) and estimates the parameters the config would build; `shapes(...)` reads the safetensors
headers (and the index that names the shards) as safetensors itself would, with every tensor's dtype, shape
and byte range checked against the file; `matched(...)` compares the config with those shapes, so
transformers never meets a size mismatch; `tokenizer(...)` checks tokenizer.json's model and that no token id
lies beyond the model's vocabulary. Every problem is an `AuditInputError` naming the file and the field.
"""

from __future__ import annotations

import itertools
import json
import math
import re
import struct
from dataclasses import dataclass
from pathlib import Path

from audit._util.errors import AuditInputError
from audit._util.paths import input_file

MAX_JSON_BYTES = 64 << 20  # a multilingual tokenizer.json is tens of MB; a config a few KB
MAX_DEPTH = 64  # nesting of JSON objects and arrays; real model files nest under 10 deep
MAX_HEADER_BYTES = 100 << 20  # a safetensors header lists tensor names and shapes: a few MB at most
MAX_SIZE = 1 << 31  # any size in a config (layers, width, vocabulary, positions)
DTYPES = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
          "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8}
TOKENIZER_MODELS = ("BPE", "WordPiece", "WordLevel", "Unigram")
# config field -> its other names in BERT-like encoders (DistilBERT, GPT-style configs)
SIZES = {"num_hidden_layers": ("n_layers", "n_layer"), "hidden_size": ("dim", "d_model", "n_embd"),
         "num_attention_heads": ("n_heads", "n_head"), "intermediate_size": ("hidden_dim", "n_inner"),
         "vocab_size": (), "max_position_embeddings": ("n_positions",), "type_vocab_size": ()}
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKETS = re.compile(r"[\[\]{}]")


@dataclass(frozen=True)
class Config:
    """The sizes a config declares (None where it does not name one) and the labels it has."""

    sizes: dict[str, int | None]
    labels: int

    def parameters(self) -> int:
        """Parameters a BERT-like encoder of these sizes holds: embeddings, then per layer attention (four
        square projections) and the feed-forward block, then pooler and classifier."""
        size = self.sizes
        hidden, layers = size["hidden_size"] or 0, size["num_hidden_layers"] or 0
        inner = size["intermediate_size"] or 4 * hidden
        rows = (size["vocab_size"] or 0) + (size["max_position_embeddings"] or 0) + (size["type_vocab_size"] or 0)
        layer = 4 * hidden * (hidden + 1) + 2 * hidden * inner + inner + hidden + 4 * hidden
        return rows * hidden + 2 * hidden + layers * layer + hidden * (hidden + 1) + self.labels * (hidden + 1)


def read_json(file: Path, name: str, *, limit: int = MAX_JSON_BYTES):
    """A JSON file's value, refused in one line when larger than `limit` bytes, nested deeper than
    `MAX_DEPTH`, not UTF-8, not JSON, or holding a number that is not a finite float."""
    file = input_file(file)
    size = file.stat().st_size
    if size > limit:
        raise AuditInputError(f"{name}: {file.name} has {size:,} bytes, over the {limit:,} a model file may have")
    try:
        return parsed(file.read_bytes().decode("utf-8"), f"{name}: {file.name}")
    except UnicodeDecodeError:
        raise AuditInputError(f"{name}: {file.name} is not UTF-8 text") from None


def parsed(text: str, what: str):
    """`text` as JSON, nested at most `MAX_DEPTH` deep, its numbers finite (checked before parsing deeper)."""
    depth = max(itertools.accumulate(1 if b in "[{" else -1 for b in _BRACKETS.findall(_STRING.sub("", text))),
                default=0)
    if depth > MAX_DEPTH:
        raise AuditInputError(f"{what} nests {depth} levels deep, over the limit of {MAX_DEPTH}")
    try:
        return json.loads(text, parse_constant=_not_finite, parse_float=_finite, parse_int=_integer)
    except (json.JSONDecodeError, ValueError) as exc:
        raise AuditInputError(f"{what} is not valid JSON ({exc})") from None


def _not_finite(word: str):
    raise ValueError(f"{word} is not a number JSON allows")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is too large for a number")
    return value


def _integer(text: str) -> int:
    if len(text.lstrip("-")) > 40:
        raise ValueError(f"an integer of {len(text)} digits")
    return int(text)


def _object(value, what: str) -> dict:
    if not isinstance(value, dict):
        raise AuditInputError(f"{what} holds {_kind(value)}, expected an object")
    return value


def _kind(value) -> str:
    return "null" if value is None else f"a {type(value).__name__}"


def _count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def config(found: dict, name: str) -> Config:
    """The sizes and labels of a config.json (already a dict), each field transformers builds from checked."""
    what = f"{name}: config.json"
    if not isinstance(found.get("model_type"), str):
        raise AuditInputError(f"{what}: model_type is {_kind(found.get('model_type'))}, expected a string")
    architectures = found.get("architectures", [])
    if architectures is not None and (not isinstance(architectures, list)
                                      or not all(isinstance(a, str) for a in architectures)):
        raise AuditInputError(f"{what}: architectures is {_kind(architectures)}, expected a list of class names")
    sizes: dict[str, int | None] = {}
    for field, aliases in SIZES.items():
        key = next((k for k in (field, *aliases) if found.get(k) is not None), None)  # null: the default
        value = found.get(key) if key else None
        if key is not None and not (_count(value) and 0 < value <= MAX_SIZE):
            raise AuditInputError(f"{what}: {key} is {value!r}, expected a whole number from 1 to {MAX_SIZE:,}")
        sizes[field] = value
    heads, hidden = sizes["num_attention_heads"], sizes["hidden_size"]
    if heads and hidden and hidden % heads:
        raise AuditInputError(f"{what}: hidden size {hidden} is not a multiple of the {heads} attention heads")
    for key, value in found.items():
        if ("dropout" in key or key.endswith("_prob")) and value is not None and not isinstance(value, bool) and (
                not isinstance(value, (int, float)) or not 0 <= value <= 1):
            raise AuditInputError(f"{what}: {key} is {value!r}, expected a probability from 0 to 1")
    eps = found.get("layer_norm_eps", 1e-12)
    if not isinstance(eps, (int, float)) or isinstance(eps, bool) or not 0 < eps < 1:
        raise AuditInputError(f"{what}: layer_norm_eps is {eps!r}, expected a small positive number")
    for key in ("hidden_act", "activation"):
        if key in found and not isinstance(found[key], str):
            raise AuditInputError(f"{what}: {key} is {_kind(found[key])}, expected the name of an activation")
    return Config(sizes, _labels(found, what))


def _labels(found: dict, what: str) -> int:
    id2label = found.get("id2label")
    if id2label is None:
        labels = found.get("num_labels", 2)
        if not (_count(labels) and 0 < labels <= MAX_SIZE):
            raise AuditInputError(f"{what}: num_labels is {labels!r}, expected a whole number")
        return labels
    if not isinstance(id2label, dict) or not id2label:
        raise AuditInputError(f"{what}: id2label is {_kind(id2label)}, expected an object of class numbers to names")
    if not all(re.fullmatch(r"\d{1,9}", k) for k in id2label) or not all(isinstance(v, str) for v in id2label.values()):
        raise AuditInputError(f"{what}: id2label must map class numbers (\"0\", \"1\", ...) to names (strings)")
    if sorted(int(k) for k in id2label) != list(range(len(id2label))):
        raise AuditInputError(f"{what}: id2label numbers the classes {sorted(map(int, id2label))}, expected 0 to "
                              f"{len(id2label) - 1}")
    label2id = found.get("label2id")
    if label2id is not None and not (isinstance(label2id, dict) and all(_count(v) for v in label2id.values())):
        raise AuditInputError(f"{what}: label2id is {_kind(label2id)}, expected an object of names to class numbers")
    return len(id2label)


def shapes(folder: Path, weights: str, name: str) -> dict[str, tuple[int, ...]]:
    """Tensor name -> shape of every tensor the safetensors weights hold (a single file, or the shards an
    index names), each file's header checked as safetensors checks it."""
    if not weights.endswith(".index.json"):
        return header(folder / weights, name)
    what = f"{name}: {weights}"
    weight_map = _object(read_json(folder / weights, name), what).get("weight_map")
    if not isinstance(weight_map, dict) or not weight_map:
        raise AuditInputError(f"{what}: weight_map is {_kind(weight_map)}, expected an object of tensor names to "
                              "file names")
    for tensor, shard in weight_map.items():
        if not isinstance(shard, str) or not re.fullmatch(r"[\w.-]+\.safetensors", shard) or shard.startswith("."):
            raise AuditInputError(f"{what}: tensor {tensor!r} is in {shard!r}, expected a .safetensors file name in "
                                  "the folder")
    found: dict[str, tuple[int, ...]] = {}
    for shard in sorted(set(weight_map.values())):
        found.update(header(folder / shard, name))
    absent = sorted(set(weight_map) - set(found))
    if absent:
        raise AuditInputError(f"{what}: {len(absent)} tensor(s) it names are not in their files (first: "
                              f"{absent[0]!r})")
    return found


def header(file: Path, name: str) -> dict[str, tuple[int, ...]]:
    """Tensor name -> shape of a safetensors file, its header read and checked without reading the data."""
    what = f"{name}: {file.name}"
    if not file.is_file() or file.resolve().parent != file.parent.resolve():
        raise AuditInputError(f"{what} is missing or outside the folder")
    size = input_file(file, whole=False).stat().st_size
    with open(file, "rb") as f:
        raw = f.read(8)
        length = struct.unpack("<Q", raw)[0] if len(raw) == 8 else -1
        if not 2 <= length <= min(MAX_HEADER_BYTES, size - 8):
            raise AuditInputError(f"{what} is not a safetensors file (its header length does not fit the file)")
        text = f.read(length)
    try:
        tensors = _object(parsed(text.decode("utf-8"), what), f"{what}'s header")
    except UnicodeDecodeError:
        raise AuditInputError(f"{what} is not a safetensors file (its header is not UTF-8)") from None
    found, spans = {}, []
    for key, tensor in tensors.items():
        if key == "__metadata__":
            if not isinstance(tensor, dict) or not all(isinstance(v, str) for v in tensor.values()):
                raise AuditInputError(f"{what}: __metadata__ must map names to strings")
            continue
        if not isinstance(tensor, dict) or set(tensor) != {"dtype", "shape", "data_offsets"}:
            raise AuditInputError(f"{what}: tensor {key!r} is {_kind(tensor)}, expected dtype, shape and data_offsets")
        dtype, shape, offsets = tensor["dtype"], tensor["shape"], tensor["data_offsets"]
        if not isinstance(dtype, str) or dtype not in DTYPES:
            raise AuditInputError(f"{what}: tensor {key!r} has dtype {dtype!r}, not one safetensors knows")
        if not isinstance(shape, list) or len(shape) > 8 or not all(_count(n) and 0 <= n <= 1 << 40 for n in shape):
            raise AuditInputError(f"{what}: tensor {key!r} has shape {shape!r}, expected up to 8 sizes of 0 or more")
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(_count(n) for n in offsets)
                and offsets[1] - offsets[0] == math.prod(shape) * DTYPES[dtype]):
            raise AuditInputError(f"{what}: tensor {key!r} has data_offsets {offsets!r}, which do not hold its "
                                  f"{dtype} values of shape {shape}")
        found[key] = tuple(shape)
        spans.append(tuple(offsets))
    end = 0
    for start, stop in sorted(spans):
        if start != end:
            raise AuditInputError(f"{what}: tensors overlap or leave gaps in the data (at byte {start:,})")
        end = stop
    if end != size - 8 - length:
        raise AuditInputError(f"{what}: the header describes {end:,} bytes of data, the file holds "
                              f"{size - 8 - length:,}")
    return found


def matched(declared: Config, tensors: dict[str, tuple[int, ...]], name: str) -> None:
    """Refuse a config whose sizes disagree with the weights' shapes (vocabulary, width, positions, token
    types, layers, labels)."""
    size = declared.sizes
    expected = {"word_embeddings.weight": (size["vocab_size"], size["hidden_size"]),
                "position_embeddings.weight": (size["max_position_embeddings"], size["hidden_size"]),
                "token_type_embeddings.weight": (size["type_vocab_size"], size["hidden_size"]),
                "classifier.weight": (declared.labels, None)}
    for suffix, want in expected.items():
        key = next((k for k in sorted(tensors) if k == suffix or k.endswith(f".{suffix}")), None)
        if key is None:
            continue
        got = tensors[key]
        if len(got) != 2 or any(w is not None and w != g for w, g in zip(want, got)):
            shown = " x ".join("?" if w is None else str(w) for w in want)
            raise AuditInputError(f"{name}: the weights' {key} is {' x '.join(map(str, got))}, the config declares "
                                  f"{shown}; config.json does not describe these weights")
    layers = {int(m[1]) for k in tensors if (m := re.search(r"\.layers?\.(\d+)\.", k))}
    if layers and size["num_hidden_layers"] and len(layers) != size["num_hidden_layers"]:
        raise AuditInputError(f"{name}: the weights hold {len(layers)} layer(s), the config declares "
                              f"{size['num_hidden_layers']}; config.json does not describe these weights")


def tokenizer(folder: Path, vocab_size: int | None, name: str) -> None:
    """Refuse a tokenizer.json whose model is unknown, whose unknown token is not a string, or whose token
    ids (vocabulary, added and special tokens) lie outside the model's vocabulary of `vocab_size`."""
    file = folder / "tokenizer.json"
    if not file.is_file():
        return
    what = f"{name}: tokenizer.json"
    found = _object(read_json(file, name), what)
    model = _object(found.get("model"), f"{what}'s model")
    kind = model.get("type")
    if kind not in TOKENIZER_MODELS:
        raise AuditInputError(f"{what}: model type {kind!r} is not one of {', '.join(TOKENIZER_MODELS)}")
    if kind in ("WordPiece", "WordLevel") and not isinstance(model.get("unk_token"), str):
        raise AuditInputError(f"{what}: unk_token is {_kind(model.get('unk_token'))}, expected a token")
    vocab = model.get("vocab")
    if kind == "Unigram":
        if not isinstance(vocab, list) or not all(isinstance(v, list) and len(v) == 2 and isinstance(v[0], str)
                                                  for v in vocab):
            raise AuditInputError(f"{what}: a Unigram vocab must be a list of [token, score] pairs")
        ids = list(range(len(vocab)))
    else:
        if not isinstance(vocab, dict) or not all(_count(v) and v >= 0 for v in vocab.values()):
            raise AuditInputError(f"{what}: vocab must map tokens to ids of 0 or more")
        ids = list(vocab.values())
    added = found.get("added_tokens") or []
    if not isinstance(added, list) or not all(isinstance(t, dict) and _count(t.get("id")) and t["id"] >= 0
                                              and isinstance(t.get("content"), str) for t in added):
        raise AuditInputError(f"{what}: added_tokens must be a list of tokens with an id and a content")
    _template(found.get("post_processor"), what)
    ids += [t["id"] for t in added] + _special_ids(found.get("post_processor"))
    limit = vocab_size or MAX_SIZE
    beyond = [i for i in ids if not (_count(i) and 0 <= i < limit)]
    if beyond:
        raise AuditInputError(f"{what}: token id {beyond[0]!r} is beyond the model's vocabulary of {limit:,}")


def special_tokens(found: dict, name: str) -> None:
    """Refuse a tokenizer_config.json whose special tokens ([UNK], [PAD], ...) are not non-empty strings (an
    empty unknown token sends transformers' id lookup into endless recursion)."""
    for key, value in found.items():
        if not key.endswith("_token") or value is None:
            continue
        content = value.get("content") if isinstance(value, dict) else value
        if not isinstance(content, str) or not content:
            raise AuditInputError(f"{name}: tokenizer_config.json's {key} is {_kind(content)}"
                                  f"{' (empty)' if content == '' else ''}, expected a token")


def _template(processor, what: str) -> None:
    """Refuse a template post-processor naming a special token it does not define (tokenizers panics on it)."""
    if not isinstance(processor, dict):
        return
    for inner in processor.get("processors") or []:  # a Sequence of post-processors
        _template(inner, what)
    if processor.get("type") != "TemplateProcessing":
        return
    special = processor.get("special_tokens")
    if not isinstance(special, dict) or not all(
            isinstance(t, dict) and isinstance(t.get("ids"), list) and isinstance(t.get("tokens"), list)
            and len(t["ids"]) == len(t["tokens"]) for t in special.values()):
        raise AuditInputError(f"{what}: the post-processor's special_tokens must map names to ids and tokens")
    for side in ("single", "pair"):
        pieces = processor.get(side) or []
        if not isinstance(pieces, list) or not all(isinstance(p, dict) for p in pieces):
            raise AuditInputError(f"{what}: the post-processor's {side} template must be a list of pieces")
        for piece in pieces:
            token = piece.get("SpecialToken")
            if token is not None and (not isinstance(token, dict) or token.get("id") not in special):
                raise AuditInputError(f"{what}: the post-processor's template uses a special token it does not "
                                      "define")


def _special_ids(value) -> list:
    """The ids a post-processor inserts ([CLS], [SEP]), wherever they sit in it."""
    if isinstance(value, dict):
        ids = value.get("ids")
        return [*(ids if isinstance(ids, list) else []),
                *(i for key, v in value.items() if key != "ids" for i in _special_ids(v))]
    if isinstance(value, list):
        if len(value) == 2 and isinstance(value[0], str) and _count(value[1]):  # ("[CLS]", 101)
            return [value[1]]
        return [i for v in value for i in _special_ids(v)]
    return []
