"""A tiny BERT save_pretrained folder made offline, and edits of its files (config, index, safetensors
header, tokenizer), for tests/test_huggingface_hardening.py and benchmarks/fuzz.py's Hugging Face family."""

from __future__ import annotations

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
    value = json.loads(file.read_text(encoding="utf-8"))
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
