"""Text counterfactual probe: finds a planted name bias, finds little in the control."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.stats import norm

import audit
from audit.analyzers.fairness.analyzer import Fairness
from audit.io.builtin import load_identity_lists
from audit.core.dataset import Dataset
from audit.methods.fairness.counterfactual import (MIN_PROBES, counterfactual_probe, identities, max_rate_interval,
                                           sentence_probes, template_probes)
from audit.methods.fairness.intervals import wilson
from audit.models.training import TrainConfig, train

NAMES = 25  # of each gender, so each name is seen often enough to enter the vocabulary


def named_reviews(*, planted: bool, n: int = 2000, seed: int = 0):
    """Review snippets, each opened by a first name ("Emily: ..."). Planted: 90% of negative reviews
    name a woman and 90% of positive ones a man; control: the gender is a coin flip."""
    rng = np.random.default_rng(seed)
    lists = load_identity_lists("basic")
    men, women = lists["male"][:NAMES], lists["female"][:NAMES]
    reviews = audit.load_dataset("reviews", "all").sample(n, seed=seed)
    texts, genders = [], []
    for text, label in zip(reviews.texts, reviews.labels):
        woman = rng.random() < (0.9 if label == 0 else 0.1) if planted else rng.random() < 0.5
        name = rng.choice(women if woman else men)
        texts.append(f"{name}: {' '.join(text.split()[:20])}")
        genders.append("woman" if woman else "man")
    full = Dataset(np.array(texts, dtype=object), reviews.labels, reviews.classes, "text",
                   sensitive=pd.DataFrame({"gender": genders}), name="named reviews")
    return tuple(full.split([0.7, 0.15, 0.15], seed=seed))


@lru_cache(maxsize=None)
def named_lstm(planted: bool):
    parts = named_reviews(planted=planted)
    config = TrainConfig(epochs=4, patience=4, lr=0.005)
    model = train("lstm", *parts, config=config, model_config={"embed_dim": 16, "hidden": 16}, quiet=True).model
    return model, parts[2]


def names_row(result):
    pairs = result.tables["counterfactual_pairs"].set_index("axis")
    return pairs.loc["names"]


def test_probe_finds_a_planted_name_bias():
    model, data = named_lstm(True)
    result = Fairness(samples=200).run(model, data, seed=0)
    row = names_row(result)
    assert row["from_sentences"] > 100
    assert row["flip_rate"] > 0.25
    assert row["mean_delta"] < -0.15  # women's names push towards the negative class
    assert result.metrics["fairness.counterfactual_flip_rate"] >= row["flip_rate"]
    assert result.metrics["fairness.counterfactual_max_delta"] > 0.5
    # the named person's gender is also a sensitive column: the group metrics see the same bias
    assert result.intervals["fairness.gender.demographic_parity_difference"][0] > 0.3


def test_substitutions_change_only_the_identity_term():
    ids = identities({"he", "she", "his", "her", "emily", "michael", "jessica", "american", "french", "muslim",
                      "christian", "man", "woman", "actor", "actress"})
    texts = ["Michael was great and he knew it.", "The plot will mark you.", "An American comedy.",
             "She gave her best."]
    probes = sentence_probes(texts, ids, np.random.default_rng(0))
    by_axis = {}
    for p in probes:
        by_axis.setdefault(p.axis, []).append((p.before, p.after))
    assert ("Michael was great and he knew it.", "Emily was great and he knew it.") in by_axis["names"]
    assert ("Michael was great and he knew it.", "Michael was great and she knew it.") in by_axis["gendered words"]
    assert ("He gave his best.", "She gave her best.") in by_axis["gendered words"]  # before is the male form
    assert ("An American comedy.", "An French comedy.") in by_axis["nationalities"]
    assert not any("mark" in before.lower() and "Mark" not in before for before, _ in by_axis["names"])
    templates = template_probes(ids, np.random.default_rng(0))
    assert {p.axis for p in templates} == {"names", "gendered words", "nationalities", "religions"}
    assert ("The man in this film is wonderful.", "The woman in this film is wonderful.") in [
        (p.before, p.after) for p in templates]


def test_reviews_lstm_is_probed_without_sensitive_attributes(reviews_lstm):
    data = audit.load_dataset("reviews", "test")
    analyzer = Fairness(samples=300)
    assert analyzer.supports(reviews_lstm, data)
    first, again = analyzer.run(reviews_lstm, data, seed=0), analyzer.run(reviews_lstm, data, seed=0)
    assert first.metrics == again.metrics
    assert set(first.metrics) == {"fairness.counterfactual_flip_rate", "fairness.counterfactual_max_delta"}
    assert 0 <= first.metrics["fairness.counterfactual_flip_rate"] <= 1
    assert [f.title for f in first.figures] == ["Counterfactual identity substitutions"]


@pytest.mark.parametrize("vocabulary", [set(), {"the", "film"}])
def test_a_model_that_knows_no_identity_term_is_reported_not_scored(vocabulary):
    assert template_probes(identities(vocabulary), np.random.default_rng(0)) == []


class KeyedOnName(torch.nn.Module):
    """Predicts class 1 exactly when the token `key` occurs."""

    def __init__(self, vocab_size: int, key: int):
        super().__init__()
        self.embedding = torch.nn.Embedding(vocab_size, 2)
        self.key = key

    def forward(self, ids):
        present = (ids == self.key).any(1).float()
        return torch.stack([torch.zeros_like(present), 8 * present - 4], 1)


def keyed_probe(men: int, women: int, key: str = "jennifer"):
    """The probe of a model that says 1 only for `key`, knowing `men` male and `women` female names (the first
    of checklist's lists) and the pair man/woman; the data mention no identity, so every probe is a template."""
    lists = load_identity_lists("basic")
    names = [n.lower() for n in lists["male"][:men] + lists["female"][:women]]
    vocab = ("<pad>", "<unk>", *dict.fromkeys(names + ["man", "woman", "the", "movie", "was"]))
    model = audit.wrap(KeyedOnName(len(vocab), vocab.index(key)), modality="text", classes=("0", "1"),
                       tokenizer=audit.Tokenizer(vocab=vocab))
    data = Dataset(np.array(["The movie was long.", "Dull."] * 5, dtype=object), np.zeros(10, dtype=int),
                   ("0", "1"), "text")
    return counterfactual_probe(model, data, samples=10, seed=0, positive=1)


def test_probe_counts_flips_and_gives_their_interval_with_a_warning_below_the_minimum():
    out = keyed_probe(3, 3)
    pairs = out["tables"]["counterfactual_pairs"].set_index("axis")
    # names: 3 (male, female) pairs in each of the 5 name templates, Jennifer in one pair; man/woman in 3 templates
    assert pairs["probes"].to_dict() == {"names": 15, "gendered words": 3}
    assert pairs["flips"].to_dict() == {"names": 5, "gendered words": 0}
    assert out["details"]["counterfactual_probes"] == 18
    _, low, high = wilson(5, 15, norm.ppf(0.975))
    names = pairs.loc["names"]
    assert (names["flip_rate_low"], names["flip_rate_high"]) == pytest.approx((float(low), float(high)))
    assert out["metrics"]["fairness.counterfactual_flip_rate"] == pytest.approx(1 / 3)
    _, low, high = wilson(np.array([5, 0]), np.array([15, 3]), norm.ppf(1 - 0.05 / 4))  # Bonferroni over 2 pairs
    assert out["intervals"]["fairness.counterfactual_flip_rate"] == pytest.approx((low.max(), high.max()))
    assert len(out["warnings"]) == 2 and all(f"fewer than {MIN_PROBES}" in w for w in out["warnings"])

    out = keyed_probe(10, 10)  # 50 name probes: only the 3 gendered-word probes stay below the minimum
    assert out["tables"]["counterfactual_pairs"].set_index("axis")["probes"].to_dict() == {
        "names": 50, "gendered words": 3}
    (warning,) = out["warnings"]
    assert "only 3 probes for male -> female words" in warning


def test_interval_of_the_largest_flip_rate_covers_by_simulation():
    rng = np.random.default_rng(0)
    cases = [((15, 40, 100), (0.1, 0.3, 0.05)), ((13, 13, 13, 13), (0.2,) * 4), ((45, 45), (0.0, 0.02)),
             ((200, 20), (0.5, 0.45)), ((10,), (0.5,))]
    for n, p in cases:
        n, p = np.array(n), np.array(p)
        flips = rng.binomial(n, p, size=(4000, len(n)))
        low, high = max_rate_interval(flips, np.broadcast_to(n, flips.shape), 0.95)
        assert ((low <= p.max()) & (p.max() <= high)).mean() >= 0.95, (n, p)
