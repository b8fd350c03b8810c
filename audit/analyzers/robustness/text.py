"""The robustness of a text model: synonym substitution (the headline), typo attacks, typos as a corruption and
the embedding-neighbour probe, reported apart since its swaps need not keep the meaning."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from scipy.stats import binomtest

from audit.analyzers.robustness.figures import text_figure
from audit.analyzers.robustness.summary import RobustnessSummary
from audit.core.result import Result
from audit.io.builtin import load_synonyms
from audit.methods.robustness.corruptions import corrupted_texts
from audit.methods.robustness.groups import group_table, largest_gap
from audit.methods.robustness.text_attacks import (TextAttackOutcome, embedding_neighbours, typo_attack,
                                                  word_substitution)

if TYPE_CHECKING:
    from audit.analyzers.robustness.analyzer import Robustness


_ARRAY_NAMES = {"synonym substitution": "synonym", "character typos": "typo", "embedding-neighbour probe": "neighbour"}


def run_text(options: Robustness, model, sample, seed: int) -> Result:
    """Texts: synonym substitution, typo attacks, the embedding-neighbour probe, typos as a corruption, groups."""
    texts, labels = sample.texts, model.labels(sample)
    correct = model.predict_proba(sample).argmax(1) == labels
    chosen = [t for t, ok in zip(texts, correct) if ok]
    budget = {"max_fraction": options.max_words_fraction}
    words = word_substitution(model, chosen, labels[correct], **budget)
    typos = typo_attack(model, chosen, labels[correct], **budget)
    probe = embedding_neighbours(model, chosen, labels[correct], neighbours=options.neighbours, **budget) \
        if model.embedding is not None else None
    rows, kept = [], []
    for name, severity, level, noisy in corrupted_texts(texts, seed=seed):
        kept.append(model.predict_proba(noisy).argmax(1) == labels)
        rows.append({"corruption": name, "severity": severity, "level": level, "accuracy": float(kept[-1].mean())})
    corruptions = pd.DataFrame(rows)
    attacks = {"synonym substitution": words, "character typos": typos}
    if probe is not None:
        attacks["embedding-neighbour probe"] = probe
    rates = {name: float(o.flipped.mean()) if len(chosen) else float("nan") for name, o in attacks.items()}
    changed = words.words_changed[words.flipped]
    metrics = {
        "robustness.clean_accuracy": float(correct.mean()),
        "robustness.text_attack_success_rate": rates["synonym substitution"],
        "robustness.typo_attack_success_rate": rates["character typos"],
        "robustness.text_words_changed": float(changed.mean()) if len(changed) else float("nan"),
        "robustness.corruption_accuracy": float(corruptions["accuracy"].mean()),
    }
    if probe is not None:
        metrics["robustness.embedding_neighbour_flip_rate"] = rates["embedding-neighbour probe"]
    summary = pd.DataFrame([
        {"attack": name, "success_rate": rates[name],
         "words_changed_per_success": float(o.words_changed[o.flipped].mean()) if o.flipped.any() else float("nan"),
         "meaning_preserving": name == "synonym substitution"}
        for name, o in attacks.items()])
    tables = {"attacks": summary, "corruptions": corruptions, "swaps": _swap_table(words),
              "examples": _text_examples(model, chosen, labels[correct], attacks, options.examples)}
    if len(sample.sensitive.columns):
        robust = correct.copy()
        robust[correct] = ~words.flipped
        flip = np.full(len(labels), np.nan)
        flip[correct] = np.where(words.flipped, words.words_changed, np.inf)
        groups = group_table(sample.sensitive, robust, flip).rename(columns={"median_flip": "median_words_changed"})
        gap, gap_attribute = largest_gap(groups, min_size=options.min_group_size)
        if gap_attribute is not None:
            metrics["robustness.group_gap"] = gap
        tables["by_group"] = groups
    warnings = () if len(chosen) else ("no sampled text is classified correctly; the attacks had nothing to flip",)
    details = {"texts_attacked": len(chosen),
               "candidates": "WordNet 3.0 synonyms of the part of speech WordNet gives the word (no tagger: its "
                             "dominant one in WordNet's tagged corpus; words ambiguous in part of speech, stop "
                             "words and irregular inflections are never changed)",
               "budget": f"at most {options.max_words_fraction:.0%} of a text's words (at least one)"}
    if probe is not None:
        details["embedding_neighbour_probe"] = (
            f"the {options.neighbours} nearest words in the model's own embedding (cosine); a sensitivity probe, not "
            "a meaning-preserving attack, so it is not the headline rate and feeds no finding")
    intervals = {}
    if len(chosen):  # the same Wilson interval the robustness finding states
        ci = binomtest(int(words.flipped.sum()), len(chosen)).proportion_ci(0.95, method="wilson")
        intervals["robustness.text_attack_success_rate"] = (float(ci.low), float(ci.high))
    summary = RobustnessSummary(metric="robustness.text_attack_success_rate", correct=len(chosen),
                                kept=1 - metrics["robustness.text_attack_success_rate"])
    arrays = {"correct": correct, "corrupted_correct": np.stack(kept, 1),
              **{f"{_ARRAY_NAMES[name]}_flipped": o.flipped for name, o in attacks.items()},
              **{f"{_ARRAY_NAMES[name]}_words_changed": o.words_changed for name, o in attacks.items()}}
    return Result(analyzer=options.name, metrics=metrics, intervals=intervals, tables=tables,
                  figures=(text_figure(metrics),), config=options.config(), warnings=warnings, details=details,
                  summary=summary, arrays=arrays)


def _text_examples(model, texts, labels, attacks: dict[str, TextAttackOutcome], n: int) -> pd.DataFrame:
    rows = []
    for attack, outcome in attacks.items():
        for i in np.flatnonzero(outcome.flipped)[:n]:
            rows.append({"attack": attack, "original": texts[i], "adversarial (changes marked)": outcome.marked[i],
                         "words_changed": len(outcome.changes[i]), "prediction": model.classes[int(labels[i])],
                         "adversarial_prediction": model.classes[int(model.predict([outcome.texts[i]])[0])]})
    return pd.DataFrame(rows, columns=["attack", "original", "adversarial (changes marked)", "words_changed",
                                       "prediction", "adversarial_prediction"])


def _swap_table(outcome: TextAttackOutcome) -> pd.DataFrame:
    """Every synonym swap of the successful attacks: the word, its substitute, their part of speech and how
    many flipped texts made that swap, the most frequent first."""
    pos_names = {"n": "noun", "v": "verb", "a": "adjective", "r": "adverb"}
    table = load_synonyms()
    swaps = pd.DataFrame([(old, new) for changes in outcome.changes for _, old, new in changes],
                         columns=["original", "substitute"])
    counts = swaps.value_counts(sort=False).rename("texts").reset_index()
    counts.insert(2, "part_of_speech", [pos_names[table[w].pos] for w in counts["original"]])
    return counts.sort_values(["texts", "original", "substitute"], ascending=[False, True, True],
                              kind="stable").reset_index(drop=True)
