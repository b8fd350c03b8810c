"""Build `wordnet_synonyms.tsv.gz`, the synonym table of the word-substitution attack, from WordNet 3.0.

A one-time build step, not a run-time dependency: reads WordNet's own data files
(Debian: `apt-get install wordnet-base` puts them in /usr/share/wordnet) and writes one
line per word, `word<TAB>pos<TAB>synonym,synonym,...`, sorted, gzipped with mtime 0 (the
same WordNet gives the same bytes). Run from the repository root:

    python audit/io/files/build_synonyms.py [/usr/share/wordnet]

Which words and synonyms (see LICENSES.md):
- words are single lower-case letter runs of `MIN_LETTERS` or more (no multi-word
  lemmas, none that WordNet also lists capitalized: the tokenizer lower-cases, so "Murphy"
  would become "potato"), not in scikit-learn's English stop words, and not
  an irregular inflection of another lemma (verb.exc etc.: "saw" is mostly "see", not the
  tool);
- each word gets one part of speech, the one holding at least `DOMINANT` of its tagged
  occurrences in the SemCor concordance (cntlist.rev, matched by sense key); an untagged
  word only when WordNet gives it a single part of speech. No tagger runs at audit time,
  so a word without such a part of speech gets no line ("love" the noun or the verb), nor
  does one that can be a regular inflection in another part of speech ("used", "boring");
- its synonyms are the other single-word lemmas of its senses in that part of speech
  that hold at least `MIN_SHARE` of its tagged occurrences (the first sense when none
  is tagged), in sense order;
- words are kept when they occur in the shipped review snippets or are common
  (tagged at least `MIN_TAGGED` times in SemCor), which keeps the file small.
"""

from __future__ import annotations

import csv
import gzip
import re
import sys
from collections import defaultdict
from pathlib import Path

from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

HERE = Path(__file__).resolve().parent
OUT = HERE / "wordnet_synonyms.tsv.gz"
REVIEWS = HERE / "movieReviewSnippets_GroundTruth.txt.gz"
POS_FILES = {"n": "noun", "v": "verb", "a": "adj", "r": "adv"}
SS_TYPE = {"n": 1, "v": 2, "a": 3, "r": 4, "s": 5}  # the number a sense key gives each synset type
DOMINANT = 0.9
MIN_TAGGED = 3
MIN_SHARE = 0.1
MIN_LETTERS = 3  # "e" (the vitamin) or "ok" read as abbreviations more than as words
#: morphy's detachment rules (WordNet's morph(7WN)): suffix -> ending of the base form, per part of speech
DETACHMENT = {
    "n": (("s", ""), ("ses", "s"), ("xes", "x"), ("zes", "z"), ("ches", "ch"), ("shes", "sh"), ("men", "man"),
          ("ies", "y")),
    "v": (("s", ""), ("ies", "y"), ("es", "e"), ("es", ""), ("ed", "e"), ("ed", ""), ("ing", "e"), ("ing", "")),
    "a": (("er", ""), ("est", ""), ("er", "e"), ("est", "e")),
}
_WORD = re.compile(r"[a-z]+")
_MARKER = re.compile(r"\(.*\)$")  # an adjective's position marker: (a), (p), (ip)


def _usable(word: str) -> bool:
    return len(word) >= MIN_LETTERS and bool(_WORD.fullmatch(word))


def senses(wordnet: Path) -> dict[str, dict[str, list[str]]]:
    """lemma -> pos -> synset offsets in WordNet's sense order."""
    out: dict[str, dict[str, list[str]]] = defaultdict(dict)
    for pos, name in POS_FILES.items():
        for line in (wordnet / f"index.{name}").read_text(encoding="utf-8").splitlines():
            if line.startswith(" "):  # the license header
                continue
            fields = line.split()
            lemma, synsets, pointers = fields[0], int(fields[2]), int(fields[3])
            out[lemma][pos] = fields[4 + pointers + 2:][:synsets]
    return out


def synsets(wordnet: Path) -> dict[tuple[str, str], list[tuple[str, str]]]:
    """(pos, offset) -> the synset's (lemma as written, its sense key), adjective markers such as (a) dropped."""
    lines = {}
    for pos, name in POS_FILES.items():
        for line in (wordnet / f"data.{name}").read_text(encoding="utf-8").splitlines():
            if not line.startswith(" "):
                fields = line.split()
                lines[pos, fields[0]] = fields
    out = {}
    for (pos, offset), fields in lines.items():
        filenum, kind, count = fields[1], fields[2], int(fields[3], 16)
        words = [(_MARKER.sub("", w), int(i, 16)) for w, i in zip(fields[4:4 + 2 * count:2],
                                                                       fields[5:5 + 2 * count:2])]
        head = ""
        if kind == "s":  # a satellite's key names its head adjective: the first word of the "&" target
            rest = fields[4 + 2 * count:]
            target = next(rest[1 + 4 * k + 1] for k in range(int(rest[0])) if rest[1 + 4 * k] == "&")
            head_word, head_id = lines["a", target][4], int(lines["a", target][5], 16)
            head = f"{_MARKER.sub('', head_word).lower()}:{head_id:02d}"
        out[pos, offset] = [(w, f"{w.lower()}%{SS_TYPE[kind]}:{filenum}:{i:02d}:{head}") for w, i in words]
    return out


def tag_counts(wordnet: Path) -> dict[str, int]:
    """Sense key -> times SemCor tagged it."""
    out = {}
    for line in (wordnet / "cntlist.rev").read_text(encoding="utf-8").splitlines():
        key, _, count = line.split()
        out[key] = int(count)
    return out


def irregular_forms(wordnet: Path) -> set[str]:
    """Words that WordNet lists as an irregular inflection of a different lemma."""
    forms = set()
    for name in POS_FILES.values():
        for line in (wordnet / f"{name}.exc").read_text(encoding="utf-8").splitlines():
            form, *bases = line.split()
            if any(base != form for base in bases):
                forms.add(form)
    return forms


def inflection_readings(word: str, index: dict[str, dict[str, list[str]]]) -> set[str]:
    """The parts of speech in which `word` can be a regular inflection of another lemma (WordNet's morphy
    detachment rules): "used" can be the verb "use", "boring" the verb "bore"."""
    return {pos for pos, rules in DETACHMENT.items() for suffix, ending in rules
            if word.endswith(suffix) and (base := word[:len(word) - len(suffix)] + ending) != word
            and pos in index.get(base, {})}


def review_words() -> set[str]:
    with gzip.open(REVIEWS, "rt", encoding="utf-8", newline="") as fh:
        rows = csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE)
        return {w for row in rows if len(row) == 3 for w in _WORD.findall(row[2].lower())}


def table(wordnet: Path, keep: set[str]) -> dict[str, tuple[str, list[str]]]:
    """word -> (its part of speech, its synonyms)."""
    index, words, counts = senses(wordnet), synsets(wordnet), tag_counts(wordnet)
    excluded = irregular_forms(wordnet) | set(ENGLISH_STOP_WORDS)
    out = {}
    for lemma, by_pos in index.items():
        if not _usable(lemma) or lemma in excluded:
            continue
        written = {pos: [next((w, key) for w, key in words[pos, o] if w.lower() == lemma) for o in offsets]
                   for pos, offsets in by_pos.items()}
        if any(w != lemma for senses_ in written.values() for w, _ in senses_):
            continue  # also a proper noun ("Murphy" the actor, "murphy" the potato): the tokenizer lower-cases
        tally = {pos: [counts.get(key, 0) for _, key in senses_] for pos, senses_ in written.items()}
        tagged = {pos: sum(numbers) for pos, numbers in tally.items()}
        total = sum(tagged.values())
        if total:
            pos = max(tagged, key=tagged.get)
            if tagged[pos] < DOMINANT * total:
                continue
        elif len(by_pos) == 1:
            pos = next(iter(by_pos))
        else:
            continue
        if lemma not in keep and total < MIN_TAGGED or inflection_readings(lemma, index) - {pos}:
            continue
        kept = ([o for o, n in zip(by_pos[pos], tally[pos]) if n >= MIN_SHARE * tagged[pos]] if total
                else by_pos[pos][:1])
        synonyms = []
        for offset in kept:
            for word, _ in words[pos, offset]:
                if _usable(word) and word != lemma and word not in excluded and word not in synonyms:
                    synonyms.append(word)
        if synonyms:
            out[lemma] = (pos, synonyms)
    return out


def main(wordnet: Path) -> None:
    rows = table(wordnet, review_words())
    text = "".join(f"{word}\t{pos}\t{','.join(syn)}\n" for word, (pos, syn) in sorted(rows.items()))
    with open(OUT, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=9, mtime=0) as fh:
        fh.write(text.encode("utf-8"))
    print(f"{OUT.name}: {len(rows)} words, {OUT.stat().st_size} bytes")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "/usr/share/wordnet"))
