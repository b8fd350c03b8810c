"""Words of a text model's input: the units text explanations and attacks work on.

A text encoder's `word_index(texts)` gives, for each position of `encode(texts)`, the number of
the word of `tokens(text)` it belongs to, and -1 for padding and special tokens ([CLS], [SEP]).
Our `Tokenizer` reads one position per word; a Hugging Face tokenizer splits words into
subwords, whose attributions are summed per word, and a hidden word reads as one unknown
token however many subwords it had (as a word outside our `Tokenizer`'s vocabulary reads). Per-word
values sit in the first columns of an (N, positions) array, word j at column j, so they line up
with `tokens(text)` the way per-token values of our `Tokenizer` always have.
"""

from __future__ import annotations

import numpy as np
import torch

#: Arrays of 8-byte numbers as wide as the text that one masked copy takes while `hide_words` builds it (the ids,
#: their word index, the kept order, the result and temporaries).
MASKED_ARRAYS = 6


def word_counts(index: np.ndarray) -> np.ndarray:
    """Words per text: one more than the largest word number of its row."""
    return index.max(axis=1, initial=-1) + 1


def per_word(values: np.ndarray, index: np.ndarray) -> np.ndarray:
    """Per-position values (N, positions) summed per word into word slots (N, positions); padding and
    special tokens are left out."""
    out = np.zeros_like(values)
    rows, cols = np.nonzero(index >= 0)
    np.add.at(out, (rows, index[rows, cols]), values[rows, cols])
    return out


def masked_bytes(ids: torch.Tensor) -> int:
    """Bytes one masked copy of texts as wide as `ids` takes while it is built and scored: explainers that
    build many size their chunks by it (the model's passes over them are sized by their activations)."""
    return MASKED_ARRAYS * ids.shape[-1] * 8


def hide_words(ids: torch.Tensor, index: np.ndarray, hidden: np.ndarray, unk: int, pad: int) -> torch.Tensor:
    """`ids` with every hidden word read as one unknown word, whatever its length: its first token becomes
    `unk`, its further subwords are dropped and the row closes up, padded with `pad` at the end (so a word of
    seven subwords is no bigger a change than a word of one). `hidden` (N, words or more) says which word
    slots are hidden."""
    index = np.asarray(index)
    hide = np.take_along_axis(np.asarray(hidden, dtype=bool), np.maximum(index, 0), axis=1) & (index >= 0)
    first = np.ones_like(hide)
    first[:, 1:] = index[:, 1:] != index[:, :-1]
    out = ids.masked_fill(torch.from_numpy(hide & first), unk)
    drop = hide & ~first
    if not drop.any():
        return out
    order = torch.from_numpy(np.argsort(drop, axis=1, kind="stable"))  # kept positions first, in their order
    tail = np.arange(ids.shape[1])[None, :] >= ids.shape[1] - drop.sum(axis=1, keepdims=True)
    return out.gather(1, order).masked_fill(torch.from_numpy(tail), pad)
