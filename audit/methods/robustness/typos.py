"""Character typos: the edits a hurried typist makes (swap, drop, double or replace a letter)."""

from __future__ import annotations

import re

import numpy as np

_WORD = re.compile(r"[A-Za-z]{3,}")
_LETTERS = "abcdefghijklmnopqrstuvwxyz"


def typo_variants(word: str) -> list[str]:
    """Every one-edit typo of `word` that keeps its first and last letter: swaps, drops, doubles."""
    inner = range(1, len(word) - 1)
    swaps = [word[:i] + word[i + 1] + word[i] + word[i + 2:] for i in range(1, len(word) - 2)]
    drops = [word[:i] + word[i + 1:] for i in inner]
    doubles = [word[: i + 1] + word[i] + word[i + 1:] for i in inner]
    return list(dict.fromkeys(v for v in swaps + drops + doubles if v != word))


def typo(word: str, rng: np.random.Generator) -> str:
    """One random typo of `word`: a variant from `typo_variants`, or one inner letter replaced."""
    if len(word) < 3:
        return word
    if rng.random() < 0.25:
        i = int(rng.integers(1, len(word) - 1))
        return word[:i] + _LETTERS[int(rng.integers(len(_LETTERS)))] + word[i + 1:]
    variants = typo_variants(word)
    return variants[int(rng.integers(len(variants)))] if variants else word


def typo_text(text: str, share: float, rng: np.random.Generator) -> str:
    """`text` with a typo in each word of three or more letters with probability `share`."""
    return _WORD.sub(lambda m: typo(m.group(), rng) if rng.random() < share else m.group(), text)
