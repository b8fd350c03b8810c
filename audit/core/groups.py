"""Sensitive attributes as group labels: continuous columns bucketed, features crossed.

A numeric column with more than `MAX_CATEGORIES` distinct values is continuous and is
cut into buckets by one rule (`group_rules`), in this order:

1. the edges the user gives for it (`bins`, e.g. `--set 'fairness.bins={income=[30000, 60000]}'`);
2. an age column, one whose name has the word "age" in it (`age`, `Age`, `age_in_years`,
   `applicantAge`; not `wage` or `page`): the fixed AGE_BINS, under 25, 25-34, 35-44,
   45-54, 55-64, 65 and over, the same on any data;
3. any other: its quartiles on the audited data, which differ from one data set to the
   next (the analyzer warns and names them: give edges to compare runs).

Every other column is categorical, its values used as they are and listed in natural
order (`natural_order`): by the number in them when every value has one ("<25" before
"25-34", "2" before "10"), else alphabetically.

The rules read only each column's distinct values and their counts (`SensitiveValues`),
which add up over chunks: a streamed run groups its rows as a run over the whole data does.
The quartiles come from the counts exactly as np.quantile gives them on the column.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations

import numpy as np
import pandas as pd

from audit._util.errors import AuditInputError

MAX_CATEGORIES = 12
AGE_BINS = (25, 35, 45, 55, 65)
GIVEN, AGE, QUARTILES = "given", "fixed age bins", "quartiles of this data"
INTERSECTION = "&"  # joins feature names ("sex&race") and group values ("Female & Black")
NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
PEOPLE, SITES, GROUPS = "people", "sites", "groups"
PEOPLE_WORDS = {"sex", "gender", "race", "age", "ethnicity", "ethnic", "religion", "nationality", "national",
                "citizenship", "disability", "disabled", "marital", "pregnancy", "color", "colour", "origin",
                "caste", "orientation", "sexual", "veteran", "ancestry", "language", "native", "immigrant",
                "immigration", "person", "people", "patient", "applicant", "tribe", "tribal", "indigenous"}
SITE_WORDS = {"site", "sites", "camera", "cameras", "hospital", "hospitals", "clinic", "clinics", "device",
              "devices", "scanner", "scanners", "location", "locations", "region", "regions", "source", "sources",
              "center", "centre", "lab", "laboratory", "machine", "sensor", "station", "vendor", "manufacturer",
              "store", "branch", "ward", "facility", "institution"}


def bucket(column: pd.Series, edges: Sequence[float], *, whole: bool | None = None) -> pd.Series:
    """Labels "<a", "a-b" (a <= x < b, b shown as b-1 for whole numbers) and ">=z" for the inner `edges`.
    `whole`: whether the column's values are all whole numbers (None: look at `column`)."""
    edges = sorted(float(e) for e in edges)
    if not edges:
        raise AuditInputError(f"sensitive column {column.name!r}: bucket edges must not be empty")
    if whole is None:
        whole = bool(np.all(np.mod(column.to_numpy(dtype=float), 1) == 0))
    whole = all(e.is_integer() for e in edges) and whole
    fmt = (lambda v: f"{int(v)}") if whole else (lambda v: f"{v:g}")
    labels = [f"<{fmt(edges[0])}"]
    for low, high in zip(edges[:-1], edges[1:]):
        labels.append(f"{fmt(low)}-{fmt(high - 1)}" if whole else f"{fmt(low)}-<{fmt(high)}")
    labels.append(f">={fmt(edges[-1])}")
    which = np.searchsorted(np.array(edges), column.to_numpy(dtype=float), side="right")
    return pd.Series(pd.Categorical.from_codes(which, labels), index=column.index, name=column.name)


def natural_order(values) -> list[str]:
    """Group names in the order a reader expects: by their first number when every name has one
    (a leading "<" before and ">" after the same number: "<25", "25-34", ">=65"), else alphabetically."""
    values = sorted(set(map(str, values)))
    numbers = [NUMBER.search(v) for v in values]
    if not values or not all(numbers):
        return values

    def key(item):
        value, number = item
        prefix = value[:number.start()].strip()
        side = -1 if prefix.startswith("<") else 1 if prefix.startswith(">") else 0
        return float(number.group()), side, value

    return [value for value, _ in sorted(zip(values, numbers), key=key)]


def _words(name: str) -> list[str]:
    return re.split(r"[^a-z]+", re.sub(r"([a-z])([A-Z])", r"\1_\2", str(name)).lower())


def is_age(name: str) -> bool:
    return "age" in _words(name)


def attribute_kind(name: str) -> str:
    """What the groups of a sensitive column are: PEOPLE (sex, race, age, ...), SITES (site, camera, hospital,
    ...) or other GROUPS, by the words of its name; an intersection is people or sites only when every feature
    crossed in it is. A sentence about camera sites must not speak of people."""
    kinds = set()
    for feature in str(name).split(INTERSECTION):
        words = set(_words(feature))
        kinds.add(PEOPLE if words & PEOPLE_WORDS else SITES if words & SITE_WORDS else GROUPS)
    return kinds.pop() if len(kinds) == 1 else GROUPS


def _edges(name: str, values: np.ndarray, counts: np.ndarray, given) -> tuple[tuple[float, ...], str]:
    if given:
        return tuple(float(e) for e in given), GIVEN
    if is_age(name):
        return tuple(float(e) for e in AGE_BINS), AGE
    return tuple(float(e) for e in np.unique([_quantile(values, counts, q) for q in (0.25, 0.5, 0.75)])), QUARTILES


def _quantile(values: np.ndarray, counts: np.ndarray, q: float) -> float:
    """np.quantile(q) (its default, linear method) of the column holding each of `values` `counts` times:
    the two order statistics it interpolates, found from the counts, interpolated by np.quantile itself."""
    order = np.argsort(values)
    values, ends = values[order], np.cumsum(counts[order])
    position = (ends[-1] - 1) * q
    below = int(np.floor(position))
    at = np.searchsorted(ends, [below, min(below + 1, ends[-1] - 1)], side="right")
    return float(np.quantile(values[at], position - below))


@dataclass(frozen=True)
class GroupRule:
    """How one sensitive column becomes group labels: its groups in order, and for a bucketed column its
    edges, the rule that chose them and whether its values are whole numbers (how the buckets are named)."""

    name: str
    groups: tuple[str, ...]
    edges: tuple[float, ...] | None = None
    rule: str | None = None
    whole: bool = False

    def labels(self, column: pd.Series) -> pd.Categorical:
        if self.edges is None:
            return pd.Categorical(column.astype(str), categories=self.groups)
        return pd.Categorical(bucket(column, self.edges, whole=self.whole).astype(str), categories=self.groups)


class SensitiveValues:
    """The distinct values of each sensitive column and how often each occurs, added up chunk by chunk: all
    `group_rules` needs, so a column is grouped the same whether the data are read whole or streamed. It grows
    with the distinct values, not the rows."""

    def __init__(self) -> None:
        self.counts: dict[str, pd.Series] = {}
        self.numeric: dict[str, bool] = {}

    def add(self, sensitive: pd.DataFrame) -> None:
        for name in sensitive.columns:
            column, key = sensitive[name], str(name)
            numeric = pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)
            counts = column.value_counts(sort=False)
            self.numeric[key] = self.numeric.get(key, True) and numeric
            known = self.counts.get(key)
            self.counts[key] = counts if known is None else known.add(counts, fill_value=0)

    @classmethod
    def of(cls, sensitive: pd.DataFrame) -> SensitiveValues:
        values = cls()
        values.add(sensitive)
        return values


def group_rules(values: SensitiveValues, bins: Mapping[str, Sequence[float]] | None = None) -> dict[str, GroupRule]:
    """The `GroupRule` of every sensitive column, from its values (module docstring: which columns are
    bucketed, and where)."""
    bins = dict(bins or {})
    unknown = sorted(set(bins) - set(values.counts))
    if unknown:
        raise AuditInputError(f"bins given for {unknown}, which are not sensitive columns; they are: "
                              f"{', '.join(values.counts)}")
    rules = {}
    for name, counts in values.counts.items():
        counts = counts[counts > 0]
        if name in bins or (values.numeric[name] and len(counts) > MAX_CATEGORIES):
            if not values.numeric[name]:
                raise AuditInputError(f"bins given for sensitive column {name!r}, which is not numeric")
            numbers = counts.index.to_numpy(dtype=float)
            edges, rule = _edges(name, numbers, counts.to_numpy(), bins.get(name))
            whole = bool(np.all(np.mod(numbers, 1) == 0))
            present = bucket(pd.Series(numbers, name=name), edges, whole=whole)
            groups = tuple(c for c in present.cat.categories if c in set(present.astype(str)))
            rules[name] = GroupRule(name, groups, edges, rule, whole)
        else:
            rules[name] = GroupRule(name, tuple(natural_order(counts.index.astype(str).unique())))
    return rules


def bucketed(rules: Mapping[str, GroupRule]) -> dict[str, tuple[tuple[float, ...], str]]:
    """The columns cut into buckets: name -> (edges, rule)."""
    return {name: (r.edges, r.rule) for name, r in rules.items() if r.edges is not None}


def group_labels(sensitive: pd.DataFrame, bins: Mapping[str, Sequence[float]] | None = None) -> pd.DataFrame:
    """Each sensitive column as categorical string labels (buckets in order, other values in
    natural order), continuous columns bucketed."""
    return apply_rules(sensitive, group_rules(SensitiveValues.of(sensitive), bins))


def apply_rules(sensitive: pd.DataFrame, rules: Mapping[str, GroupRule]) -> pd.DataFrame:
    return pd.DataFrame({str(name): rules[str(name)].labels(sensitive[name]) for name in sensitive.columns},
                        index=sensitive.index)


def with_intersections(groups: pd.DataFrame, order: int, *, drop_unused: bool = True) -> pd.DataFrame:
    """`groups` plus one column per combination of up to `order` features ("sex&race": "Female & Black"),
    its groups ordered by the first feature's order, then the second's; every combination a group when not
    `drop_unused` (a chunk of streamed rows: another chunk may hold the ones this one lacks)."""
    columns = {name: groups[name] for name in groups.columns}
    for k in range(2, order + 1):
        for names in combinations(groups.columns, k):
            joined = groups[names[0]]
            for name in names[1:]:
                right = groups[name]
                order_of = [f"{a} {INTERSECTION} {b}" for a in joined.cat.categories for b in right.cat.categories]
                values = joined.astype(str) + f" {INTERSECTION} " + right.astype(str)
                joined = pd.Series(pd.Categorical(values, categories=order_of), index=groups.index)
            columns[INTERSECTION.join(names)] = joined.cat.remove_unused_categories() if drop_unused else joined
    return pd.DataFrame(columns, index=groups.index)
