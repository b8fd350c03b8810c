"""A tiny BERT save_pretrained folder made offline, and edits of its files (config, index, safetensors
header, tokenizer), for tests/test_huggingface_hardening.py and benchmarks/fuzz.py's Hugging Face family."""

from __future__ import annotations

import contextlib
import json
import struct
from pathlib import Path

VOCAB = 54  # hf_helpers.word_tokenizer(50): four special tokens and w0 ... w49
TEXTS = "text,label\nw1 w2 w3,a\nw4 w5 w6,b\nw1 w9,a\nw3 w3 w7,b\nw8,a\nw2 w4,b\n"


def save_tiny_bert(folder: Path) -> Path:
    """A one-layer random BERT (hidden size 16, classes a and b) and its word tokenizer, saved in `folder`."""
    import torch
    import transformers

    from hf_helpers import word_tokenizer

    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=VOCAB, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
        max_position_embeddings=32, id2label={0: "a", 1: "b"}, label2id={"a": 0, "b": 1},
        architectures=["BertForSequenceClassification"])
    transformers.BertForSequenceClassification(config).save_pretrained(folder)
    word_tokenizer(VOCAB - 4).save_pretrained(folder)
    return folder


def edit_json(file: Path, edit) -> None:
    """Rewrite a JSON file with `edit(value)` applied (in place, or its return value when not None)."""
    value = json.loads(file.read_bytes())
    changed = edit(value)
    file.write_text(json.dumps(value if changed is None else changed), encoding="utf-8")


def split_safetensors(file: Path) -> tuple[dict, bytes]:
    """The header (a dict) and the data bytes of a safetensors file."""
    raw = file.read_bytes()
    length = struct.unpack("<Q", raw[:8])[0]
    return json.loads(raw[8:8 + length]), raw[8 + length:]


def write_safetensors(file: Path, header: dict | bytes | str, data: bytes) -> None:
    """A safetensors file of `header` (a dict, or raw header text) followed by `data`."""
    text = header if isinstance(header, bytes) else (
        header if isinstance(header, str) else json.dumps(header)).encode("utf-8")
    file.write_bytes(struct.pack("<Q", len(text)) + text + data)


def edit_header(folder: Path, edit) -> None:
    """Rewrite model.safetensors with `edit(header)` applied to its header (data kept)."""
    file = folder / "model.safetensors"
    header, data = split_safetensors(file)
    changed = edit(header)
    write_safetensors(file, header if changed is None else changed, data)


def shard(folder: Path, weight_map) -> None:
    """Replace model.safetensors by an index naming `weight_map` (model.safetensors renamed to shard.safetensors)."""
    (folder / "model.safetensors").rename(folder / "shard.safetensors")
    (folder / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


HOSTILE = (None, True, -1, 0, 1, 3, 7, 2**31, 2**40, 10**6, -0.5, 0.5, 1.5, 1e308, "", "x", "bert", "[UNK]",
           "../x", [], [1], ["bert"], {}, {"0": "a"}, {"a": 1}, "F32", [1, 2], [-1], [0, 2**62])


def hostile_value(rng):
    """A value of the wrong type, range or size, now and then nested deep."""
    if rng.random() < 0.05:
        return json.loads(nested(rng.choice([70, 500])))
    return rng.choice(HOSTILE)


def _edit_somewhere(value, rng) -> None:
    """Replace, delete or add one entry of a JSON object somewhere inside `value` (an object)."""
    for _ in range(rng.randint(0, 3)):
        inner = [v for v in value.values() if isinstance(v, dict) and v]
        if not inner:
            break
        value = rng.choice(inner)
    keys = list(value)
    roll = rng.random()
    if keys and roll < 0.15:
        del value[rng.choice(keys)]
    elif keys and roll < 0.9:
        value[rng.choice(keys)] = hostile_value(rng)
    else:
        value[rng.choice(["num_labels", "model_max_length", "auto_map", "n_layers", "extra"])] = hostile_value(rng)


def _edit_index(folder: Path, rng) -> None:
    names = [n for n in split_safetensors(folder / "model.safetensors")[0] if n != "__metadata__"]
    weight_map = {n: "shard.safetensors" for n in names}
    roll = rng.random()
    if roll < 0.3:
        weight_map[rng.choice(names)] = rng.choice(["model.safetensors.index.json", "../shard.safetensors",
                                                    "absent.safetensors", "/etc/passwd", ["shard.safetensors"], 5,
                                                    "config.json", "tokenizer.json", ".safetensors"])
    elif roll < 0.5:
        weight_map = rng.choice([list(weight_map), "shard.safetensors", None, {}, nested(100)])
    elif roll < 0.7:
        del weight_map[rng.choice(names)]
    elif roll < 0.8:
        weight_map["absent.tensor"] = "shard.safetensors"
    shard(folder, weight_map)


def _edit_tensors(folder: Path, rng) -> None:
    file = folder / "model.safetensors"
    header, data = split_safetensors(file)
    names = [n for n in header if n != "__metadata__"]
    roll = rng.random()
    if roll < 0.6:
        tensor = header[rng.choice(names)]
        field = rng.choice(["dtype", "shape", "data_offsets"])
        choices = {"dtype": ["F16", "I64", "BOOL", "F33", "", None, 4],
                   "shape": [[], [0], [-1], [2**40, 2**40], [1e308], [1] * 20, [3, 3], "16"],
                   "data_offsets": [[0, 0], [0, 2**62], [-4, 0], [100, 50], [0], [len(data), len(data) + 64]]}
        tensor[field] = rng.choice(choices[field] + [hostile_value(rng)])
    elif roll < 0.7:
        del header[rng.choice(names)]
    elif roll < 0.8:
        header = rng.choice(["[1,2]", "{", '{"a": ' + nested(rng.choice([100, 100_000])) + "}", "null", "{}",
                             '{"a": {"dtype": "F32", "shape": [Infinity], "data_offsets": [0, 4]}}'])
    elif roll < 0.9:
        data = data[:rng.randrange(len(data))] if rng.random() < 0.5 else data + b"\0" * rng.randint(1, 64)
    else:
        raw = bytearray(struct.pack("<Q", 0) + json.dumps(header).encode())
        raw[:8] = struct.pack("<Q", rng.choice([0, 1, 7, 2**40, 2**64 - 1, len(raw) + len(data)]))
        file.write_bytes(bytes(raw) + data)
        return
    write_safetensors(file, header, data)


def _flip_bytes(file: Path, rng) -> None:
    raw = bytearray(file.read_bytes())
    if rng.random() < 0.3:
        del raw[rng.randrange(len(raw)):]
    for _ in range(rng.randint(1, 8)):
        if raw:
            raw[rng.randrange(len(raw))] = rng.randrange(256)
    file.write_bytes(bytes(raw))


def mutate_folder(folder: Path, rng) -> None:
    """One to three hostile edits of a saved tiny BERT: config values, its sizes against the weights, an
    index of shards, the safetensors header or file, tokenizer.json and tokenizer_config.json values, or
    random bytes of any of the files. An edit of a file an earlier edit made unreadable is skipped."""
    for _ in range(rng.choice([1, 1, 1, 2, 3])):
        with contextlib.suppress(ValueError, RecursionError, struct.error, TypeError, KeyError, IndexError):
            _mutate_once(folder, rng)


def _mutate_once(folder: Path, rng) -> None:
    if (folder / "model.safetensors.index.json").exists():
        target = rng.choice(["config", "tokenizer", "bytes"])
    else:
        target = rng.choice(["config", "config", "sizes", "index", "tensors", "tensors", "tokenizer",
                             "tokenizer", "tokenizer_config", "deep", "bytes"])
    if target == "config":
        edit_json(folder / "config.json", lambda c: _edit_somewhere(c, rng))
    elif target == "sizes":
        key = rng.choice(["vocab_size", "hidden_size", "max_position_embeddings", "num_hidden_layers",
                          "intermediate_size", "type_vocab_size", "num_attention_heads"])
        edit_json(folder / "config.json", lambda c: c.update({key: rng.choice([1, 2, 4, 8, 32, 60, 64])}))
    elif target == "index":
        _edit_index(folder, rng)
    elif target == "tensors":
        _edit_tensors(folder, rng)
    elif target == "tokenizer":
        edit_json(folder / "tokenizer.json", lambda t: _edit_somewhere(t, rng))
    elif target == "deep":
        file = folder / rng.choice(["config.json", "tokenizer.json", "tokenizer_config.json"])
        file.write_text('{"model_type": "bert", "x": ' + nested(rng.choice([100, 100_000])) + "}")
    elif target == "tokenizer_config":
        edit_json(folder / "tokenizer_config.json", lambda t: _edit_somewhere(t, rng))
    else:
        files = [p for p in sorted(folder.iterdir()) if p.is_file()]
        _flip_bytes(rng.choice(files), rng)
