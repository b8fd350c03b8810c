"""Sensitive attributes as group labels: continuous columns bucketed, features crossed.

A numeric column with more than `MAX_CATEGORIES` distinct values is continuous and is
cut into buckets by one rule (`edges_for`), in this order:

1. the edges the user gives for it (`bins`, e.g. `--set 'fairness.bins={income=[30000, 60000]}'`);
2. an age column, one whose name has the word "age" in it (`age`, `Age`, `age_in_years`,
   `applicantAge`; not `wage` or `page`): the fixed AGE_BINS, under 25, 25-34, 35-44,
   45-54, 55-64, 65 and over, the same on any data;
3. any other: its quartiles on the audited data, which differ from one data set to the
   next (the analyzer warns and names them: give edges to compare runs).

Every other column is categorical, its values used as they are and listed in natural
order (`natural_order`): by the number in them when every value has one ("<25" before
"25-34", "2" before "10"), else alphabetically.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from itertools import combinations

import numpy as np
import pandas as pd

from audit.errors import AuditInputError

MAX_CATEGORIES = 12
AGE_BINS = (25, 35, 45, 55, 65)
GIVEN, AGE, QUARTILES = "given", "fixed age bins", "quartiles of this data"
INTERSECTION = "&"  # joins feature names ("sex&race") and group values ("Female & Black")
NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def is_continuous(column: pd.Series) -> bool:
    numeric = pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)
    return numeric and column.nunique() > MAX_CATEGORIES


def bucket(column: pd.Series, edges: Sequence[float]) -> pd.Series:
    """Labels "<a", "a-b" (a <= x < b, b shown as b-1 for whole numbers) and ">=z" for the inner `edges`."""
    edges = sorted(float(e) for e in edges)
    if not edges:
        raise AuditInputError(f"sensitive column {column.name!r}: bucket edges must not be empty")
    whole = all(e.is_integer() for e in edges) and np.all(np.mod(column.to_numpy(dtype=float), 1) == 0)
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


def is_age(name: str) -> bool:
    words = re.split(r"[^a-z]+", re.sub(r"([a-z])([A-Z])", r"\1_\2", str(name)).lower())
    return "age" in words


def edges_for(column: pd.Series, given: Sequence[float] | None = None) -> tuple[tuple[float, ...], str]:
    """The bucket edges of a continuous column and the rule that chose them (GIVEN, AGE or QUARTILES)."""
    if given:
        return tuple(float(e) for e in given), GIVEN
    if is_age(column.name):
        return tuple(float(e) for e in AGE_BINS), AGE
    return tuple(float(e) for e in np.unique(np.quantile(column.to_numpy(dtype=float), [0.25, 0.5, 0.75]))), QUARTILES


def binned(sensitive: pd.DataFrame, bins: Mapping[str, Sequence[float]] | None = None
           ) -> dict[str, tuple[tuple[float, ...], str]]:
    """The columns `group_labels` cuts into buckets: name -> (edges, rule)."""
    bins = dict(bins or {})
    return {str(name): edges_for(sensitive[name], bins.get(str(name))) for name in sensitive.columns
            if str(name) in bins or is_continuous(sensitive[name])}


def group_labels(sensitive: pd.DataFrame, bins: Mapping[str, Sequence[float]] | None = None) -> pd.DataFrame:
    """Each sensitive column as categorical string labels (buckets in order, other values in
    natural order), continuous columns bucketed."""
    bins = dict(bins or {})
    unknown = sorted(set(bins) - set(map(str, sensitive.columns)))
    if unknown:
        columns = ", ".join(map(str, sensitive.columns))
        raise AuditInputError(f"bins given for {unknown}, which are not sensitive columns; they are: {columns}")
    labels = {}
    for name in sensitive.columns:
        column = sensitive[name]
        if str(name) in bins or is_continuous(column):
            if not pd.api.types.is_numeric_dtype(column):
                raise AuditInputError(f"bins given for sensitive column {name!r}, which is not numeric")
            buckets = bucket(column, edges_for(column, bins.get(str(name)))[0])
            labels[str(name)] = buckets.cat.remove_unused_categories()
        else:
            values = column.astype(str)
            labels[str(name)] = pd.Categorical(values, categories=natural_order(values.unique()))
    return pd.DataFrame(labels, index=sensitive.index)


def with_intersections(groups: pd.DataFrame, order: int) -> pd.DataFrame:
    """`groups` plus one column per combination of up to `order` features ("sex&race": "Female & Black"),
    its groups ordered by the first feature's order, then the second's."""
    columns = {name: groups[name] for name in groups.columns}
    for k in range(2, order + 1):
        for names in combinations(groups.columns, k):
            joined = groups[names[0]]
            for name in names[1:]:
                right = groups[name]
                order_of = [f"{a} {INTERSECTION} {b}" for a in joined.cat.categories for b in right.cat.categories]
                values = joined.astype(str) + f" {INTERSECTION} " + right.astype(str)
                joined = pd.Series(pd.Categorical(values, categories=order_of), index=groups.index)
            columns[INTERSECTION.join(names)] = joined.cat.remove_unused_categories()
    return pd.DataFrame(columns, index=groups.index)
