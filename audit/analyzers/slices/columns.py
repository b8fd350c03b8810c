"""The columns slices are cut from, and each row's code in every one of them, decided once for the whole data.

Candidates, by modality:
  every one   the sensitive columns (and, for image folders, the metadata columns they name), grouped by
              audit.core.groups' rules from every value of the whole data (the executor's census);
  tables      every other input column: numeric ones with more than MAX_CATEGORIES values cut by the same
              rules (age bins for an age column, else quartiles), the others by their values;
  text        the length in words (quartiles) and, per identity axis of the fairness counterfactuals
              (female words, male words, nationalities, religions), whether a term of it occurs;
  every one   then the data's descriptive attributes (Dataset.attributes: an image folder's other metadata
              columns, a text table's other columns), cut as a table's inputs are.

The columns that are not sensitive are decided from the first `FIRST_ROWS` rows of the data in its order,
buffered by the tally until it has them, so an in-memory run and a streamed one, whatever its chunk size, code
every row the same. Of a categorical column the `max_values` most frequent values there are kept; a value
outside them, a value first seen later and a missing value are coded -1 (in no slice of that column). The
lattice grows with the number of column pairs (triples at depth 3), so at most `max_columns` columns are cut,
sensitive ones first; the result warns of any left out. The rows held are bounded too: of a chunk, only the
sensitive columns and the first `max_columns` others are taken (a metadata table of a thousand columns, IDs
among them, holds no more).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd

from audit.core.groups import GroupRule, SensitiveValues, bucket, group_rules
from audit.io.builtin import load_identity_lists
from audit.methods.fairness.counterfactual import GENDERED_PAIRS

FIRST_ROWS = 65_536
WORDS = "words"  # a text's length in words
TOKEN = re.compile(r"[a-z]+")


@dataclass(frozen=True)
class Column:
    """One candidate column: its name and the words of each of its codes ("age < 25", "site = B")."""

    name: str
    rule: GroupRule

    @property
    def values(self) -> tuple[str, ...]:
        return self.rule.groups

    def words(self, code: int) -> str:
        value = self.rule.groups[code]
        if self.rule.edges is None:
            return f"{self.name} = {value}"
        low, _, high = value.partition("-")
        if low == high:  # a whole-number bucket of one value, "9-9"
            return f"{self.name} = {low}"
        for sign in (">=", "<"):
            if value.startswith(sign):
                return f"{self.name} {sign} {value[len(sign):]}"
        return f"{self.name} {value}"

    def codes(self, raw: pd.Series) -> np.ndarray:
        """Each row's code: its value's (or bucket's) position among `values`, -1 where it is none of them."""
        labels = raw if self.rule.edges is None else bucket(raw, self.rule.edges, whole=self.rule.whole)
        found, distinct = pd.factorize(labels)  # names are matched per distinct value: a chunk has few
        position = pd.Index(self.rule.groups).get_indexer(pd.Index(distinct).astype(str))
        codes = np.where(found >= 0, position[np.maximum(found, 0)], -1).astype(np.int64)
        codes[raw.isna().to_numpy()] = -1
        return codes


@lru_cache(maxsize=1)
def identity_terms() -> dict[str, frozenset[str]]:
    """Per identity axis, its lower-case single-word terms."""
    basic = load_identity_lists("basic")
    single = lambda words: frozenset(w.lower() for w in words if TOKEN.fullmatch(w.lower()))  # noqa: E731
    return {"female words": single(f for _, f in GENDERED_PAIRS), "male words": single(m for m, _ in GENDERED_PAIRS),
            "nationalities": single(basic["nationality"]),
            "religions": single([*basic["religion_adj"], *basic["religion"]])}


def candidates(chunk) -> list[str]:
    """The names of a chunk's candidate columns, in order: sensitive ones, inputs (a table's, a text's length and
    identity terms), then descriptive attributes; a name once, where it first comes."""
    names = [*map(str, chunk.sensitive.columns)]
    if chunk.modality == "tabular":
        names += map(str, chunk.inputs.columns)
    elif chunk.modality == "text":
        names += [WORDS, *(f"mentions {axis}" for axis in identity_terms())]
    return list(dict.fromkeys([*names, *map(str, chunk.attributes.columns)]))


def raw_columns(chunk, limit: int | None = None) -> pd.DataFrame:
    """The candidate columns of a chunk's rows, before coding: the sensitive columns, then the first `limit` others
    (all of them when `limit` is None) in the order of `candidates`."""
    kept = candidates(chunk)
    if limit is not None:
        kept = kept[:len(set(map(str, chunk.sensitive.columns))) + limit]
    inputs = chunk.inputs if chunk.modality == "tabular" else {}
    text = _text_columns(chunk.inputs) if chunk.modality == "text" and WORDS in kept else {}
    parts = {}
    for frame in (chunk.sensitive, inputs, text, chunk.attributes):
        for column in frame:
            if str(column) in kept and str(column) not in parts:
                parts[str(column)] = frame[column].reset_index(drop=True)
    return pd.DataFrame(parts, index=pd.RangeIndex(len(chunk)))


def _text_columns(texts) -> dict[str, pd.Series]:
    """A text's length in words, and per identity axis whether a term of it occurs ("yes", "no")."""
    tokens = [TOKEN.findall(str(text).lower()) for text in texts]
    parts = {WORDS: pd.Series([len(t) for t in tokens], dtype=np.int64)}
    for axis, terms in identity_terms().items():
        parts[f"mentions {axis}"] = pd.Series(["yes" if terms.intersection(t) else "no" for t in tokens])
    return parts


@dataclass(frozen=True)
class Coder:
    """Every candidate column, and how a chunk's rows become codes (rows, columns), -1 where in no value."""

    columns: tuple[Column, ...]
    dropped: tuple[str, ...] = ()  # candidates with fewer than two values
    left_out: tuple[str, ...] = ()  # candidates beyond the first `max_columns`

    @classmethod
    def of(cls, first: pd.DataFrame, sensitive: SensitiveValues, *, max_values: int, max_columns: int,
           beyond: tuple[str, ...] = ()) -> Coder:
        """From every sensitive value of the whole data and `first`, the first rows' candidate columns; the first
        `max_columns` of them with two values or more, sensitive columns first, the others in the data's order.
        `beyond`: the candidates not taken from the rows at all (raw_columns' limit), left out too."""
        rules = {}
        others = [c for c in first.columns if c not in sensitive.counts]
        for values in (sensitive, SensitiveValues.of(first[others])):
            if values.counts:
                rules |= {name: _capped(rule, values.counts[name], max_values)
                          for name, rule in group_rules(values).items()}
        columns = [Column(name, rule) for name, rule in rules.items() if len(rule.groups) >= 2]
        return cls(tuple(columns[:max_columns]), tuple(name for name, rule in rules.items() if len(rule.groups) < 2),
                   tuple(c.name for c in columns[max_columns:]) + tuple(beyond))

    @property
    def cardinalities(self) -> list[int]:
        return [len(c.values) for c in self.columns]

    def codes(self, raw: pd.DataFrame) -> np.ndarray:
        if not self.columns:
            return np.empty((len(raw), 0), dtype=np.int64)
        return np.column_stack([c.codes(raw[c.name]) for c in self.columns])

    def words(self, pairs) -> str:
        """A slice, given as (column, code) pairs, in words: "age < 25 and workclass = Self-emp-not-inc"."""
        return " and ".join(self.columns[f].words(code) for f, code in pairs)

    def names(self) -> Mapping[str, tuple[str, ...]]:
        return {c.name: c.values for c in self.columns}


def _capped(rule: GroupRule, counts: pd.Series, max_values: int) -> GroupRule:
    """A categorical column's rule keeping only its `max_values` most frequent values (ties: in value order)."""
    if rule.edges is not None or len(rule.groups) <= max_values:
        return rule
    counts = counts.groupby(counts.index.astype(str)).sum()
    kept = set(counts.sort_index(kind="stable").sort_values(ascending=False, kind="stable").index[:max_values])
    return GroupRule(rule.name, tuple(g for g in rule.groups if g in kept))
