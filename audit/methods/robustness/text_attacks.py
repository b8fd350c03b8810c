"""Text attacks on whole words: synonym substitution, character typos, and an embedding-neighbour probe.

Each ranks the words of a text by importance (how much the true class's probability
drops when the word is replaced by the unknown token), then walks down that ranking and,
at each word, keeps the candidate that lowers the true class's probability most, until
the prediction flips or `max_fraction` of the words have changed (TextFooler's greedy
search, Jin et al., 2020).

Candidates:
- synonym substitution (the attack): the word's synonyms in the shipped WordNet 3.0
  table, all of the part of speech WordNet gives the word (`audit.io.builtin.load_synonyms`;
  a word whose part of speech is ambiguous there, a stop word or an irregular inflection
  has no entry and is never changed). No tagger runs, so the part of speech is the
  word's dominant one in WordNet's tagged corpus, not read from the sentence. Words
  capitalized inside a sentence are taken for names and left alone; a name that opens a
  sentence looks like any other first word and can still be swapped ("Murphy and Wilson
  ..." -> "Potato and Wilson ...").
- typos: one-edit misspellings.
- embedding neighbours (a sensitivity probe, not an attack that keeps meaning): the
  word's nearest neighbours in the model's own embedding (cosine), the words the model
  treats as alike ("sucks -> lmao"), not synonyms to a reader.

The adversarial text is the original string with only the substituted words' spans
replaced (in the original word's case), so it differs from its original in those words
and nowhere else; candidates are scored on that text as the model's encoder reads it, so
a word a Hugging Face tokenizer splits into subwords is swapped whole (`audit.core.words`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from audit.io.builtin import load_synonyms
from audit.core.words import hide_words
from audit._util.errors import AuditInputError
from audit.core.model import Model
from audit.methods.robustness.typos import typo_variants

_ALPHA = re.compile(r"[a-z]+")


@dataclass(frozen=True)
class TextAttackOutcome:
    """Per text: the adversarial text (the original when the attack failed), the same text
    with each substitution shown as [old -> new], whether the prediction flipped, and the
    changes as (token position, old word, new word)."""

    texts: list[str]
    marked: list[str]
    flipped: np.ndarray
    changes: list[list[tuple[int, str, str]]]

    @property
    def words_changed(self) -> np.ndarray:
        return np.array([len(c) for c in self.changes], dtype=float)


def word_substitution(model: Model, texts: list[str], labels: np.ndarray, *, max_fraction: float = 0.25
                      ) -> TextAttackOutcome:
    """Greedy substitution of words by their WordNet synonyms of the same part of speech."""
    table = load_synonyms()

    def candidates(word: str) -> list[str]:
        entry = table.get(word)
        return list(entry.words) if entry else []

    return _greedy(model, texts, labels, candidates, max_fraction, fixed=_proper_nouns)


def embedding_neighbours(model: Model, texts: list[str], labels: np.ndarray, *, neighbours: int = 8,
                         max_fraction: float = 0.25) -> TextAttackOutcome:
    """Greedy substitution of words by their nearest neighbours in the model's embedding (a probe of how
    the model's own geometry can be pushed, not a meaning-preserving attack)."""
    if model.embedding is None:
        raise AuditInputError("the embedding-neighbour probe needs a text model with an `embedding` layer")
    table = _neighbour_table(model, texts, neighbours)
    return _greedy(model, texts, labels, lambda word: table.get(word, []), max_fraction)


def typo_attack(model: Model, texts: list[str], labels: np.ndarray, *, max_fraction: float = 0.25
                ) -> TextAttackOutcome:
    """Greedy one-edit typos in the most important words."""
    return _greedy(model, texts, labels, typo_variants, max_fraction)


def _distinct(encoder, word: str, options: list[str]) -> list[str]:
    """The options the encoder reads differently from `word`, the first of those it reads alike (words
    outside our `Tokenizer`'s vocabulary all read as the unknown token, so one stands for them all)."""
    if not options:
        return []
    seen = {bytes(ids.numpy()) for ids in encoder.encode([word])}
    distinct = []
    for option, ids in zip(options, encoder.encode(options)):
        key = bytes(ids.numpy())
        if key not in seen:
            seen.add(key)
            distinct.append(option)
    return distinct


def _greedy(model: Model, texts: list[str], labels: np.ndarray, candidates: Callable[[str], list[str]],
            max_fraction: float, fixed: Callable[[str, list[str]], set[int]] | None = None) -> TextAttackOutcome:
    """The search over the words of `encoder.tokens(text)`, looked up lower-cased in `candidates`; `fixed`
    gives the word positions of a text that must not change."""
    encoder = model.encoder
    outs, marks, flipped, all_changes = [], [], [], []
    for text, label in zip(texts, labels):
        tokens = encoder.tokens(text)
        words = [i for i, t in enumerate(tokens) if _ALPHA.fullmatch(t.lower())]
        budget = max(1, int(max_fraction * len(words)))
        changes = []
        proba = model.proba(encoder.encode([text]))[0]
        kept = fixed(text, tokens) if fixed else set()
        for pos in _importance_order(model, text, words, label):
            if len(changes) >= budget or proba.argmax() != label:
                break
            word = tokens[pos].lower()
            options = _distinct(encoder, word, candidates(word)) if pos not in kept else []
            if not options:
                continue
            trials = [_rewrite(text, tokens, [*changes, (pos, tokens[pos], option)], marked=False)
                      for option in options]
            probas = model.proba(encoder.encode(trials))
            best = int(probas[:, label].argmin())
            if probas[best, label] < proba[label]:
                proba = probas[best]
                changes.append((pos, tokens[pos], options[best]))
        success = proba.argmax() != label
        changes = changes if success else []
        outs.append(_rewrite(text, tokens, changes, marked=False))
        marks.append(_rewrite(text, tokens, changes, marked=True))
        flipped.append(success)
        all_changes.append(changes)
    return TextAttackOutcome(outs, marks, np.array(flipped, dtype=bool), all_changes)


def _importance_order(model: Model, text: str, words: list[int], label: int) -> list[int]:
    """Word positions, the most important first: the largest drop of the true class's
    probability when that word alone becomes the unknown token."""
    if not words:
        return []
    ids, index = model.encoder.encode([text]), model.encoder.word_index([text])
    hidden = np.zeros((len(words), int(index.max()) + 1), dtype=bool)
    hidden[np.arange(len(words)), words] = True
    trial = hide_words(ids.repeat(len(words), 1), index.repeat(len(words), axis=0), hidden, model.encoder.UNK,
                       model.encoder.PAD)
    return [words[i] for i in np.argsort(model.proba(trial)[:, label], kind="stable")]


def _neighbour_table(model: Model, texts: list[str], k: int) -> dict[str, list[str]]:
    """For each word of `texts` that is one token of the vocabulary, its `k` nearest alphabetic words in the
    embedding."""
    vocab = model.encoder.vocab
    index = {w: i for i, w in enumerate(vocab)}
    pool = torch.tensor([i for i, w in enumerate(vocab) if _ALPHA.fullmatch(w)])
    used = torch.tensor(sorted({index[w] for text in texts for w in map(str.lower, model.encoder.tokens(text))
                                if w in index and _ALPHA.fullmatch(w)}), dtype=torch.long)
    if not len(pool) or not len(used):
        return {}
    with torch.no_grad():
        weights = torch.nn.functional.normalize(model.embedding.weight.detach().float().cpu(), dim=1)
        similarity = weights[used] @ weights[pool].T
        similarity[used[:, None] == pool[None, :]] = -torch.inf
        nearest = similarity.topk(min(k, len(pool)), dim=1).indices
    return {vocab[int(u)]: [vocab[int(pool[j])] for j in row] for u, row in zip(used, nearest)}


def _proper_nouns(text: str, tokens: list[str]) -> set[int]:
    """Positions of words written capitalized inside a sentence ("Eddie Murphy"): most likely names, which
    the lower-casing tokenizer would otherwise take for common words ("murphy", a potato)."""
    base, spans = _spans(text, tokens)
    names = set()
    for pos, (start, end) in enumerate(spans):
        word = base[start:end]
        before = [t for t in tokens[:pos] if t not in "\"'([{"]  # an opening quote or bracket starts nothing
        if word[:1].isupper() and not word.isupper() and before and before[-1] not in ".!?:":
            names.add(pos)
    return names


def _spans(text: str, tokens: list[str]) -> tuple[str, list[tuple[int, int]]]:
    """The text the tokens are found in (the original, or its lower case where lower-casing changes its
    length) and each token's (start, end) in it."""
    lower = text.lower()
    spans, cursor = [], 0
    for token in map(str.lower, tokens):
        start = lower.find(token, cursor)
        spans.append((start, start + len(token)))
        cursor = start + len(token)
    return (text if len(lower) == len(text) else lower), spans


def _rewrite(text: str, tokens: list[str], changes: list[tuple[int, str, str]], *, marked: bool) -> str:
    """`text` with the token at each changed position replaced (or shown as [old -> new] when
    `marked`), every other character kept as it was."""
    if not changes:
        return text
    base, spans = _spans(text, tokens)
    out = base
    for pos, _, new in sorted(changes, reverse=True):
        start, end = spans[pos]
        new = _match_case(new, out[start:end])
        out = out[:start] + (f"[{out[start:end]} -> {new}]" if marked else new) + out[end:]
    return out


def _match_case(word: str, like: str) -> str:
    if len(like) > 1 and like.isupper():
        return word.upper()
    return word.capitalize() if like[:1].isupper() else word
