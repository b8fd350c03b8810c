"""Text attacks and the analyzer on text: they flip a trained LSTM, every adversarial text
differs from its original only in the substituted words, and every synonym swap is one
WordNet lists for the word, in the same part of speech."""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS
from torch import nn

import audit
from audit.analyzers.robustness.analyzer import Robustness
from audit.io.builtin import load_synonyms
from audit.methods.robustness.corruptions import corrupted_texts
from audit.methods.robustness.text_attacks import embedding_neighbours, typo_attack, word_substitution
from audit.methods.robustness.typos import typo_variants


@pytest.fixture(scope="module")
def attacked(reviews_lstm):
    data = audit.load_dataset("reviews", "test").sample(40, seed=1)
    labels = reviews_lstm.labels(data)
    correct = reviews_lstm.predict(data) == labels
    texts = [t for t, ok in zip(data.texts, correct) if ok]
    return reviews_lstm, texts, labels[correct]


def assert_only_substituted_words_differ(model, original: str, adversarial: str, changes):
    """Every non-letter character is where it was; the letter runs differ exactly at the changes."""
    assert re.split(r"[A-Za-z]+", original) == re.split(r"[A-Za-z]+", adversarial)
    before, after = re.findall(r"[A-Za-z]+", original), re.findall(r"[A-Za-z]+", adversarial)
    differ = [(b.lower(), a.lower()) for b, a in zip(before, after) if b != a]
    assert all(a[:1].isupper() == b[:1].isupper() for b, a in zip(before, after))  # the case is kept
    assert sorted(differ) == sorted((old, new) for _, old, new in changes if old != new)
    # The model reads the substituted tokens at the positions the attack changed, nothing else.
    ids_before, ids_after = model.encoder.encode([original])[0], model.encoder.encode([adversarial])[0]
    assert set(np.flatnonzero((ids_before != ids_after).numpy())) <= {pos for pos, _, _ in changes}


@pytest.mark.parametrize("attack, least", [(word_substitution, 0.1), (typo_attack, 0.3), (embedding_neighbours, 0.3)])
def test_attack_flips_a_trained_lstm_changing_only_the_substituted_words(attacked, attack, least):
    model, texts, labels = attacked
    assert len(texts) >= 25
    outcome = attack(model, texts, labels)
    assert outcome.flipped.mean() >= least
    assert (model.predict(outcome.texts) != labels).tolist() == outcome.flipped.tolist()
    for original, adversarial, changes, flipped in zip(texts, outcome.texts, outcome.changes, outcome.flipped):
        if not flipped:
            assert adversarial == original and changes == []
            continue
        words = [t for t in model.encoder.tokens(original) if re.fullmatch(r"[a-z]+", t)]
        assert 1 <= len(changes) <= max(1, int(0.25 * len(words)))
        assert_only_substituted_words_differ(model, original, adversarial, changes)


def test_attacks_run_on_a_transformer():
    from conftest import train_quick

    model = train_quick("transformer", "reviews", epochs=1, lr=0.003,
                        model_config={"embed_dim": 16, "heads": 2, "layers": 1})
    data = audit.load_dataset("reviews", "test").sample(30, seed=3)
    labels = model.labels(data)
    correct = model.predict(data) == labels
    texts = [t for t, ok in zip(data.texts, correct) if ok]
    for attack in (word_substitution, embedding_neighbours):
        outcome = attack(model, texts, labels[correct])
        assert (model.predict(outcome.texts) != labels[correct]).tolist() == outcome.flipped.tolist()
        for original, adversarial, changes in zip(texts, outcome.texts, outcome.changes):
            assert_only_substituted_words_differ(model, original, adversarial, changes)
    assert outcome.flipped.any()


def test_word_candidates_are_embedding_neighbours(attacked):
    model, texts, labels = attacked
    outcome = embedding_neighbours(model, texts, labels, neighbours=3)
    weights = model.embedding.weight.detach()
    weights = weights / weights.norm(dim=1, keepdim=True)
    index = {w: i for i, w in enumerate(model.encoder.vocab)}
    checked = 0
    for changes in outcome.changes:
        for _, old, new in changes:
            sims = weights[2:] @ weights[index[old]]
            sims[index[old] - 2] = -2
            rank = int((sims > sims[index[new] - 2]).sum())
            assert rank < 3 * 2  # among the nearest (ties and non-alphabetic words aside)
            checked += 1
    assert checked > 0


def test_a_larger_budget_flips_at_least_as_often(attacked):
    model, texts, labels = attacked
    small = word_substitution(model, texts, labels, max_fraction=0.05)
    large = word_substitution(model, texts, labels, max_fraction=0.5)
    assert large.flipped.sum() >= small.flipped.sum()
    assert large.words_changed[large.flipped].mean() >= 1


def test_typos_keep_first_and_last_letters_and_are_seeded():
    assert "wrod" in typo_variants("word") and "wod" in typo_variants("word")
    assert all(v[0] == "w" and v[-1] == "d" and v != "word" for v in typo_variants("word"))
    texts = ["A perfectly charming film, truly.", "Dull and far too long."]
    first = [t for *_, t in corrupted_texts(texts, seed=3)]
    assert first == [t for *_, t in corrupted_texts(texts, seed=3)]
    assert first[-1] != texts


def test_analyzer_on_text(reviews_lstm):
    data = audit.load_dataset("reviews", "test")
    r = Robustness(samples=24).run(reviews_lstm, data, seed=0)
    assert r.metrics["robustness.text_attack_success_rate"] > 0.1
    assert r.metrics["robustness.embedding_neighbour_flip_rate"] > r.metrics["robustness.text_attack_success_rate"]
    assert r.metrics["robustness.text_words_changed"] >= 1
    assert set(r.metrics) <= set(Robustness.metrics)
    assert "robustness.pgd_accuracy" not in r.metrics
    examples = r.tables["examples"]
    assert set(examples["attack"]) == {"synonym substitution", "character typos", "embedding-neighbour probe"}
    assert len(examples) and examples["adversarial (changes marked)"].str.contains(" -> ").all()
    assert (examples["prediction"] != examples["adversarial_prediction"]).all()
    swaps, table = r.tables["swaps"], load_synonyms()
    assert len(swaps) and all(new in table[old].words for old, new in zip(swaps["original"], swaps["substitute"]))
    assert set(swaps["part_of_speech"]) <= {"noun", "verb", "adjective", "adverb"}
    flipped = r.metrics["robustness.text_attack_success_rate"] * r.summary.correct
    assert swaps["texts"].sum() >= round(flipped)
    assert r.metrics == Robustness(samples=24).run(reviews_lstm, data, seed=0).metrics


def test_text_robustness_by_group(reviews_lstm):
    from dataclasses import replace

    import pandas as pd

    model = reviews_lstm
    data = audit.load_dataset("reviews", "test").sample(40, seed=2)
    data = replace(data, sensitive=pd.DataFrame({"half": np.where(np.arange(40) < 20, "first", "second")}))
    r = Robustness(samples=40, min_group_size=5).run(model, data, seed=0)
    groups = r.tables["by_group"].set_index("group")
    assert groups["examples"].tolist() == [20, 20]
    assert r.metrics["robustness.group_gap"] == pytest.approx(
        abs(groups.loc["first", "robust_accuracy"] - groups.loc["second", "robust_accuracy"]))
    overall = r.metrics["robustness.clean_accuracy"] * (1 - r.metrics["robustness.text_attack_success_rate"])
    assert groups["robust_accuracy"].mean() == pytest.approx(overall)


# -- synonym substitution: WordNet synonyms of the same part of speech ------------------------

WORDNET = Path("/usr/share/wordnet")  # the Debian wordnet-base files the table was built from (.ci/run installs them)
POS_FILES = {"n": "noun", "v": "verb", "a": "adj", "r": "adv"}


@lru_cache(maxsize=None)
def wordnet_index(pos: str) -> dict[str, list[int]]:
    out = {}
    for line in (WORDNET / f"index.{POS_FILES[pos]}").read_text(encoding="utf-8").splitlines():
        if not line.startswith(" "):
            fields = line.split()
            out[fields[0]] = [int(o) for o in fields[4 + int(fields[3]) + 2:][: int(fields[2])]]
    return out


def wordnet_synonyms(word: str, pos: str) -> set[str]:
    """Every lemma that shares a synset with `word` in `pos`, read from WordNet's own files (an index entry's
    synset offsets are byte offsets into data.<pos>), independently of the build script."""
    found = set()
    with open(WORDNET / f"data.{POS_FILES[pos]}", "rb") as fh:
        for offset in wordnet_index(pos).get(word, []):
            fh.seek(offset)
            fields = fh.readline().decode("utf-8").split()
            found |= {re.sub(r"\(.*\)$", "", w) for w in fields[4:4 + 2 * int(fields[3], 16):2]}
    return found


def test_the_synonym_table_holds_wordnet_synonyms_of_one_part_of_speech():
    table = load_synonyms()
    assert 1000 < len(table) < 20000
    for word, entry in table.items():
        assert entry.pos in POS_FILES and entry.words and word not in entry.words
        for w in (word, *entry.words):
            assert re.fullmatch(r"[a-z]{3,}", w) and w not in ENGLISH_STOP_WORDS, (word, w)
    assert table["movie"].pos == "n" and "film" in table["movie"].words
    assert table["terrible"].pos == "a" and "awful" in table["terrible"].words
    for word in ("sucks", "saw", "used", "love", "the", "not"):  # slang, an irregular inflection, ambiguous, stop
        assert word not in table
    rng = np.random.default_rng(0)
    for word in rng.choice(sorted(table), 300, replace=False):
        assert set(table[word].words) <= wordnet_synonyms(word, table[word].pos), word


def test_every_swap_of_100_successful_attacks_is_a_listed_synonym_of_the_same_part_of_speech(reviews_lstm):
    model, table = reviews_lstm, load_synonyms()
    data = audit.load_dataset("reviews", "test").sample(1000, seed=5)
    labels, correct = model.labels(data), model.predict(data) == model.labels(data)
    texts, labels = [t for t, ok in zip(data.texts, correct) if ok], labels[correct]
    swaps, successes = [], 0
    for start in range(0, len(texts), 100):  # attack in chunks until 100 attacks have succeeded
        outcome = word_substitution(model, texts[start:start + 100], labels[start:start + 100])
        for changes in [c for c, ok in zip(outcome.changes, outcome.flipped) if ok][: 100 - successes]:
            swaps += [(old, new) for _, old, new in changes]
            successes += 1
        if successes == 100:
            break
    assert successes == 100 and len(swaps) >= 100
    for old, new in swaps:
        assert old in table and new in table[old].words, (old, new)
    for old, new in set(swaps):
        assert new in wordnet_synonyms(old, table[old].pos), (old, new)


class KeyedOn(nn.Module):
    """Says "yes" exactly when the token `key` occurs; the embedding only gives the probe something to read."""

    def __init__(self, vocab_size: int, key: int):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, 4)
        self.key = key

    def forward(self, ids):
        present = (ids == self.key).any(1).float()
        return torch.stack([torch.zeros_like(present), 8 * present - 4], 1)


def keyed_model(word: str):
    vocab = ("<pad>", "<unk>", "the", "movie", "was", "terrible", "awful", "plot", "long", "tonight", "and")
    return audit.wrap(KeyedOn(len(vocab), vocab.index(word)), modality="text", classes=("no", "yes"),
                      tokenizer=audit.Tokenizer(vocab=vocab))


def test_a_model_keyed_on_a_word_with_synonyms_is_flipped_by_the_swap_one_without_is_not():
    table = load_synonyms()
    texts = ["The movie was terrible tonight, and long.", "The TERRIBLE plot was long and the movie too."]
    flipped = keyed_model("terrible")
    outcome = word_substitution(flipped, texts, np.array([1, 1]))
    assert outcome.flipped.all()
    assert [[old for _, old, _ in c] for c in outcome.changes] == [["terrible"], ["terrible"]]
    assert all(new in table["terrible"].words for c in outcome.changes for _, _, new in c)
    assert outcome.marked[1].startswith("The [TERRIBLE -> ")
    assert (flipped.predict(outcome.texts) == 0).all()

    assert "plot" not in table
    texts = ["The plot was terrible tonight, and long.", "The movie was long and the plot too."]
    kept = keyed_model("plot")
    outcome = word_substitution(kept, texts, np.array([1, 1]))
    assert not outcome.flipped.any() and outcome.texts == texts
    assert typo_attack(kept, texts, np.array([1, 1])).flipped.all()  # a change of the word itself does flip it


def test_a_word_capitalized_inside_a_sentence_is_taken_for_a_name_and_kept():
    model = keyed_model("movie")
    outcome = word_substitution(model, ["The Movie was long tonight.", "Movie was long tonight."], np.array([1, 1]))
    assert outcome.flipped.tolist() == [False, True]


def test_only_synonym_substitution_feeds_the_robustness_finding():
    """A model keyed on a word without synonyms: the probe flips every text, the meaning-preserving attack
    none, and no finding is raised; keyed on a word with synonyms, the attack flips them all and it is."""
    texts = ["The plot was terrible tonight, and long.", "The movie was long and the plot too.",
             "The plot and the movie.", "Long plot tonight."]
    data = audit.Dataset(np.array(texts, dtype=object), np.ones(4, dtype=int), ("no", "yes"), "text")
    thresholds = {"robust_accuracy_ratio_min": 0.5}
    r = Robustness(samples=4, neighbours=3).run(keyed_model("plot"), data, seed=0)
    assert r.metrics["robustness.text_attack_success_rate"] == 0.0
    assert r.metrics["robustness.embedding_neighbour_flip_rate"] == 1.0
    assert Robustness().findings(r, thresholds) == ()
    texts = ["The movie was terrible tonight, and long.", "The movie was long and terrible too.",
             "The terrible movie.", "Long terrible movie tonight."]
    data = audit.Dataset(np.array(texts, dtype=object), np.ones(4, dtype=int), ("no", "yes"), "text")
    r = Robustness(samples=4).run(keyed_model("terrible"), data, seed=0)
    assert r.metrics["robustness.text_attack_success_rate"] == 1.0
    (finding,) = Robustness().findings(r, thresholds)
    assert finding.metrics == ("robustness.text_attack_success_rate",) and "synonyms" in finding.sentence


def test_a_text_model_without_an_embedding_gets_the_attacks_but_not_the_probe():
    module = keyed_model("terrible").module.inner  # the user's module inside wrap()'s adapter
    del module.embedding  # the probe reads the embedding; the attacks need only predictions
    model = audit.wrap(module, modality="text", classes=("no", "yes"), tokenizer=keyed_model("terrible").encoder)
    data = audit.Dataset(np.array(["The terrible movie.", "Long terrible movie tonight."], dtype=object),
                         np.ones(2, dtype=int), ("no", "yes"), "text")
    assert Robustness().supports(model, data)
    r = Robustness(samples=2).run(model, data, seed=0)
    assert r.metrics["robustness.text_attack_success_rate"] == 1.0
    assert "robustness.embedding_neighbour_flip_rate" not in r.metrics
