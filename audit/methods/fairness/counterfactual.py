"""Counterfactual probes of text models: swap an identity term, keep the rest, compare predictions.

Identity axes (each reported as one pair of identities):
  first names    male -> female, the 100 most common of each (checklist's basic.json lists)
  gendered words  male -> female word pairs (`GENDERED_PAIRS`)
  nationalities   one nationality -> another (basic.json)
  religions       one religion adjective -> another (basic.json)

Probes come from held-out sentences that mention a term (names and nationalities only
where capitalized, so "will" or "mark" used as words are left alone) and from the fixed
`TEMPLATES`. Only single-token terms the model's tokenizer knows are used as
substitutes: a word outside the vocabulary reads as the same unknown token whatever the
identity, so it could not show a difference. Per pair: the number of probes, mean signed
change in the positive-class probability (binary models; female minus male for the gender
axes), mean and largest absolute change in any class probability, and the share of flipped
predictions with its continuity-corrected Wilson interval. The headline flip rate is the
largest share over the pairs; its interval is [largest lower bound, largest upper bound] of
the pairs' intervals at level 1 - alpha/M over the M pairs (Bonferroni: when every pair's
interval holds, so does this one). The intervals treat probes as independent; probes that
share a sentence or a template are not quite, so read them as a floor on the uncertainty. A
pair with fewer than `MIN_PROBES` probes is named in a warning.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from scipy.stats import norm

from audit.io.builtin import load_identity_lists
from audit.methods.fairness.intervals import wilson

#: (male, female) word pairs; a female word with two male counterparts maps to the first ("her" -> "his").
GENDERED_PAIRS = (
    ("he", "she"), ("his", "her"), ("him", "her"), ("himself", "herself"), ("man", "woman"), ("men", "women"),
    ("boy", "girl"), ("boys", "girls"), ("husband", "wife"), ("father", "mother"), ("son", "daughter"),
    ("brother", "sister"), ("king", "queen"), ("actor", "actress"), ("mr", "mrs"), ("uncle", "aunt"),
    ("nephew", "niece"), ("boyfriend", "girlfriend"), ("gentleman", "lady"), ("male", "female"),
    ("grandfather", "grandmother"), ("dad", "mom"), ("prince", "princess"), ("lord", "lady"),
)
GENDERED_NOUNS = ("man", "boy", "husband", "father", "son", "brother", "king", "actor", "uncle", "gentleman")

#: Fixed sentences with one slot ({}) per axis; neutral to mildly opinionated movie talk.
TEMPLATES = {
    "names": ("{} is a great actor.", "The movie {} made was boring.", "{} gives a wonderful performance.",
              "I did not like the film {} directed.", "{} was in the movie."),
    "gendered words": ("The {} in this film is wonderful.", "The {} ruins the movie.",
                       "It is a story about a {} and a dog."),
    "nationalities": ("It is a {} film.", "The {} director made a dull movie.", "A {} comedy with a lot of heart."),
    "religions": ("The film is about a {} family.", "A {} priest is the hero of this boring story.",
                  "My {} neighbour loved this movie."),
}
PAIRS = {
    "names": "male -> female first names",
    "gendered words": "male -> female words",
    "nationalities": "nationality -> another nationality",
    "religions": "religion -> another religion",
}
SUBSTITUTES = 3  # substitutes drawn per held-out sentence (names, nationalities, religions)
TEMPLATE_TERMS = 20  # most terms per axis filled into the templates
EXAMPLES = 10
#: Below this many probes a pair cannot show a flip rate under 10% even when nothing flips: with 0 flips in
#: 45 probes the 95% continuity-corrected Wilson interval reaches 0.100, with fewer it reaches higher.
MIN_PROBES = 45


@dataclass(frozen=True)
class Probe:
    axis: str
    source: str  # "sentence" or "template"
    before: str
    after: str


def counterfactual_probe(model, data, *, samples: int, seed: int, positive: int | None = None,
                         confidence: float = 0.95) -> dict:
    """Metrics, tables and warnings of the probe (the parts of a fairness Result; the analyzer draws its
    figure from the `counterfactual_pairs` table)."""
    rng = np.random.default_rng(seed)
    ids = identities(set(model.encoder.vocab))
    texts = data.sample(samples, seed=seed).texts if data.modality == "text" else []
    probes = [*sentence_probes(texts, ids, rng), *template_probes(ids, rng)]
    out = {"metrics": {}, "intervals": {}, "tables": {}, "details": {"counterfactual_terms_known": ids.known},
           "figures": [], "warnings": []}
    if not probes:
        out["warnings"].append("counterfactual probe: no identity term the model knows; nothing was probed")
        return out
    unique = list(dict.fromkeys(t for p in probes for t in (p.before, p.after)))
    proba = model.predict_proba(unique)
    row = {t: i for i, t in enumerate(unique)}
    before = proba[[row[p.before] for p in probes]]
    after = proba[[row[p.after] for p in probes]]
    frame = pd.DataFrame({
        "axis": [p.axis for p in probes], "source": [p.source for p in probes],
        "before": [p.before for p in probes], "after": [p.after for p in probes],
        "abs_delta": np.abs(after - before).max(axis=1),
        "flipped": before.argmax(axis=1) != after.argmax(axis=1),
    })
    if positive is not None:
        frame["delta"] = after[:, positive] - before[:, positive]
    pairs = pair_table(frame, positive is not None, confidence)
    out["metrics"] = {"fairness.counterfactual_flip_rate": float(pairs["flip_rate"].max()),
                      "fairness.counterfactual_max_delta": float(frame["abs_delta"].max())}
    low, high = max_rate_interval(pairs["flips"].to_numpy(), pairs["probes"].to_numpy(), confidence)
    out["intervals"] = {"fairness.counterfactual_flip_rate": (float(low), float(high))}
    out["details"]["counterfactual_probes"] = len(frame)
    out["warnings"] += [
        f"counterfactual probe: only {row.probes} probes for {row.pair} (fewer than {MIN_PROBES}), so its flip rate "
        f"{row.flip_rate:.2f} is uncertain [{row.flip_rate_low:.2f}, {row.flip_rate_high:.2f}]"
        for row in pairs.itertuples() if row.probes < MIN_PROBES]
    examples = frame.sort_values("abs_delta", ascending=False).head(EXAMPLES)
    out["tables"] = {"counterfactual_pairs": pairs, "counterfactual_examples": examples.reset_index(drop=True)}
    return out


def pair_table(frame: pd.DataFrame, signed: bool, confidence: float) -> pd.DataFrame:
    grouped = frame.groupby("axis", sort=False)
    probes, flips = grouped.size(), grouped["flipped"].sum().astype(int)
    _, low, high = wilson(flips.to_numpy(), probes.to_numpy(), _z(1 - confidence))
    table = pd.DataFrame({
        "pair": probes.index.map(PAIRS),
        "probes": probes,
        "from_sentences": grouped["source"].agg(lambda s: int((s == "sentence").sum())),
        **({"mean_delta": grouped["delta"].mean()} if signed else {}),
        "mean_abs_delta": grouped["abs_delta"].mean(),
        "max_abs_delta": grouped["abs_delta"].max(),
        "flips": flips,
        "flip_rate": flips / probes,
        "flip_rate_low": low,
        "flip_rate_high": high,
    })
    return table.reset_index()


def max_rate_interval(flips, probes, confidence: float):
    """Interval of the largest of M rates (flips / probes over the last axis): the largest lower and the
    largest upper bound of their Wilson intervals at level 1 - alpha/M, which holds whenever all M do."""
    m = np.shape(probes)[-1]
    _, low, high = wilson(flips, probes, _z((1 - confidence) / m))
    return np.max(low, axis=-1), np.max(high, axis=-1)


def _z(alpha: float) -> float:
    return float(norm.ppf(1 - alpha / 2))


@dataclass(frozen=True)
class Identities:
    """Terms looked for in sentences (all of each list) and substitutes (single tokens the model knows)."""

    male_names: frozenset[str]
    female_names: frozenset[str]
    known_male_names: tuple[str, ...]
    known_female_names: tuple[str, ...]
    word_pairs: tuple[tuple[str, str], ...]  # (male, female), both known
    others: dict[str, tuple[frozenset[str], tuple[str, ...]]]  # nationalities, religions: (all, known)

    @property
    def known(self) -> dict[str, str]:
        return {"names": f"{len(self.known_male_names)} male, {len(self.known_female_names)} female",
                "gendered words": f"{len(self.word_pairs)} of {len(GENDERED_PAIRS)} pairs",
                **{axis: f"{len(known)} of {len(every)}" for axis, (every, known) in self.others.items()}}


def identities(vocabulary: set[str]) -> Identities:
    basic = load_identity_lists("basic")

    def known(words):
        return tuple(dict.fromkeys(w for w in words if re.fullmatch(r"[A-Za-z]+", w) and w.lower() in vocabulary))

    return Identities(
        male_names=frozenset(basic["male"]), female_names=frozenset(basic["female"]),
        known_male_names=known(basic["male"]), known_female_names=known(basic["female"]),
        word_pairs=tuple((m, f) for m, f in GENDERED_PAIRS if m in vocabulary and f in vocabulary),
        others={"nationalities": (frozenset(basic["nationality"]), known(basic["nationality"])),
                "religions": (frozenset(basic["religion_adj"]), known(basic["religion_adj"]))},
    )


def _pattern(terms, *, ignore_case: bool = False) -> re.Pattern:
    words = sorted((t for t in terms if re.fullmatch(r"[A-Za-z]+", t)), key=len, reverse=True)
    body = "|".join(re.escape(w) for w in words) or "(?!)"
    return re.compile(rf"(?<![A-Za-z'])({body})(?![A-Za-z])", re.IGNORECASE if ignore_case else 0)


def _replace(text: str, term: str, by: str) -> str:
    return _pattern([term]).sub(by, text)


def _pick(pool, rng, k: int) -> list[str]:
    return [str(t) for t in rng.choice(list(pool), size=min(k, len(pool)), replace=False)] if len(pool) else []


def sentence_probes(texts, ids: Identities, rng) -> list[Probe]:
    """Probes from sentences that mention an identity; before is always the male (or original) version."""
    probes = []
    names = _pattern(ids.male_names | ids.female_names)
    to_female = dict(ids.word_pairs)
    to_male = {f: m for m, f in reversed(ids.word_pairs)}
    swap = {**to_male, **to_female}
    words = _pattern(swap, ignore_case=True)
    others = {axis: _pattern(every) for axis, (every, _) in ids.others.items()}
    for text in texts:
        found = names.search(text)
        if found:
            female = found.group(1) in ids.female_names
            for sub in _pick(ids.known_male_names if female else ids.known_female_names, rng, SUBSTITUTES):
                swapped = _replace(text, found.group(1), sub)
                probes.append(Probe("names", "sentence", *((swapped, text) if female else (text, swapped))))
        found = words.search(text)
        if found:
            female = found.group(1).lower() not in to_female
            swapped = words.sub(lambda m: _match_case(swap[m.group(1).lower()], m.group(1)), text)
            probes.append(Probe("gendered words", "sentence", *((swapped, text) if female else (text, swapped))))
        for axis, pattern in others.items():
            found = pattern.search(text)
            if found:
                pool = [t for t in ids.others[axis][1] if t != found.group(1)]
                probes += [Probe(axis, "sentence", text, _replace(text, found.group(1), sub))
                           for sub in _pick(pool, rng, SUBSTITUTES)]
    return probes


def _match_case(word: str, like: str) -> str:
    return word.capitalize() if like[:1].isupper() else word


def template_probes(ids: Identities, rng) -> list[Probe]:
    probes = []
    k = min(len(ids.known_male_names), len(ids.known_female_names), TEMPLATE_TERMS)
    pairs = list(zip(_pick(ids.known_male_names, rng, k), _pick(ids.known_female_names, rng, k)))
    for template in TEMPLATES["names"]:
        probes += [Probe("names", "template", template.format(m), template.format(f)) for m, f in pairs]
    nouns = [(m, f) for m, f in ids.word_pairs if m in GENDERED_NOUNS]
    for template in TEMPLATES["gendered words"]:
        probes += [Probe("gendered words", "template", template.format(m), template.format(f)) for m, f in nouns]
    for axis, (_, known) in ids.others.items():
        terms = _pick(known, rng, TEMPLATE_TERMS)
        for template in TEMPLATES[axis]:
            probes += [Probe(axis, "template", template.format(a), template.format(b))
                       for i, a in enumerate(terms) for b in terms[i + 1:]]
    return probes
