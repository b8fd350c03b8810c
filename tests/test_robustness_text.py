"""Text attacks and the analyzer on text: they flip a trained LSTM, and every adversarial
text differs from its original only in the substituted words."""

from __future__ import annotations

import re

import numpy as np
import pytest

import audit
from audit.analyzers.robustness import Robustness
from audit.robustness.corruptions import corrupted_texts
from audit.robustness.text_attacks import typo_attack, word_substitution
from audit.robustness.typos import typo_variants


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
    differ = [(b.lower(), a) for b, a in zip(before, after) if b != a]
    assert sorted(differ) == sorted((old, new) for _, old, new in changes if old != new)
    # The model reads the substituted tokens at the positions the attack changed, nothing else.
    ids_before, ids_after = model.encoder.encode([original])[0], model.encoder.encode([adversarial])[0]
    assert set(np.flatnonzero((ids_before != ids_after).numpy())) <= {pos for pos, _, _ in changes}


@pytest.mark.parametrize("attack", [word_substitution, typo_attack])
def test_attack_flips_a_trained_lstm_changing_only_the_substituted_words(attacked, attack):
    model, texts, labels = attacked
    assert len(texts) >= 25
    outcome = attack(model, texts, labels)
    assert outcome.flipped.mean() >= 0.3
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
    outcome = word_substitution(model, texts, labels[correct])
    assert outcome.flipped.any()
    assert (model.predict(outcome.texts) != labels[correct]).tolist() == outcome.flipped.tolist()
    for original, adversarial, changes in zip(texts, outcome.texts, outcome.changes):
        assert_only_substituted_words_differ(model, original, adversarial, changes)


def test_word_candidates_are_embedding_neighbours(attacked):
    model, texts, labels = attacked
    outcome = word_substitution(model, texts, labels, neighbours=3)
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
    assert r.metrics["robustness.text_attack_success_rate"] > 0.2
    assert r.metrics["robustness.text_words_changed"] >= 1
    assert set(r.metrics) <= set(Robustness.metrics)
    assert "robustness.pgd_accuracy" not in r.metrics
    examples = r.tables["examples"]
    assert len(examples) and examples["adversarial (changes marked)"].str.contains(" -> ").all()
    assert (examples["prediction"] != examples["adversarial_prediction"]).all()
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
