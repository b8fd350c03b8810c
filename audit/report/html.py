"""HTML rendering: one jinja2 environment with autoescape, one template per part.

Every string from data or a model (feature and class names, text samples) goes
through autoescaping; nothing is marked safe but our own CSS and base64 images.
"""

from __future__ import annotations

import math
from functools import cache
from importlib.resources import files
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup, escape

from audit.core.analyzer import ANALYZERS
from audit.core.result import Result, worst_severity

if TYPE_CHECKING:
    from audit.executor.compare import Comparison
    from audit.executor.runner import AuditRun


@cache
def environment() -> Environment:
    env = Environment(
        loader=PackageLoader("audit.report", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["num"] = format_number
    env.globals["title_of"] = section_title
    env.globals["analyzer_title"] = analyzer_title
    env.globals["table_rows"] = table_rows
    env.filters["breakable"] = breakable
    env.globals["key_numbers"] = key_numbers
    env.globals["meaning"] = meaning
    env.globals["worst"] = worst_severity
    env.globals["shown_tables"] = shown_tables
    return env


@cache
def stylesheet() -> Markup:
    """Our stylesheet, marked safe: it is not data, and autoescaping would turn its quotes into entities."""
    return Markup(files("audit.report").joinpath("templates/report.css").read_text(encoding="utf-8"))


def render_run(run: AuditRun, *, standalone: bool = True) -> str:
    return environment().get_template("report.html.j2").render(run=run, css=stylesheet(), standalone=standalone)


def render_comparison(comparison: Comparison, *, standalone: bool = True) -> str:
    return environment().get_template("compare.html.j2").render(
        cmp=comparison, table=comparison.table(), css=stylesheet(), standalone=standalone)


def render_result(result: Result) -> str:
    return environment().get_template("result_fragment.html.j2").render(result=result, css=stylesheet())


def key_numbers(run: AuditRun) -> list[dict]:
    """The summary's key numbers: each result's headline metrics (as its analyzer declares them), in run order,
    with interval, meaning, which way is better and what drives the value (as the result says)."""
    from audit.policy.gates import find_metric_spec

    rows = []
    for result in run.results:
        headline = ANALYZERS.get(result.analyzer).headline if result.analyzer in ANALYZERS else ()
        for name in (n for n in headline if n in result.metrics):
            spec = find_metric_spec(name)
            rows.append({"metric": name, "value": result.metrics[name], "interval": result.intervals.get(name),
                         "meaning": spec.description if spec else "", "better": spec.better if spec else "",
                         "driver": result.drivers.get(name, "")})
    return rows


def meaning(name: str) -> str:
    from audit.policy.gates import find_metric_spec

    spec = find_metric_spec(name)
    return f"{spec.description} ({spec.better} is better)" if spec else ""


def breakable(name) -> Markup:
    """A metric name, escaped, that may wrap after a dot or underscore but never inside a word."""
    return Markup(str(escape(name)).replace(".", ".<wbr>").replace("_", "_<wbr>"))


def analyzer_title(name: str) -> str:
    return ANALYZERS.get(name).title if name in ANALYZERS else name


def section_title(result: Result) -> str:
    """The result's own title (a section no analyzer makes), else its analyzer's."""
    return result.title or analyzer_title(result.analyzer)


def format_number(value) -> str:
    if value is None or value is pd.NA:
        return "n/a"
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return f"{int(value):,}"
    if isinstance(value, (float, np.floating)):
        if not math.isfinite(value):
            return "n/a"
        if value != 0 and (abs(value) >= 1e5 or abs(value) < 1e-3):
            return f"{value:.3g}"
        return f"{value:,.4g}" if abs(value) >= 1000 else f"{value:.3f}"
    return str(value)


def shown_tables(result: Result) -> dict[str, pd.DataFrame]:
    """The tables the HTML shows: those a figure already shows are left to the JSON."""
    return {name: frame for name, frame in result.tables.items() if name not in result.figure_tables}


# Count columns: shown as whole numbers even where they were summed as floats (33, not 33.000).
COUNT_COLUMNS = {"count", "support", "tn", "fp", "fn", "tp", "examples", "words_changed", "rows"}


def table_rows(frame: pd.DataFrame, limit: int = 200) -> tuple[list[str], list[list], int]:
    """Header, rows (at most `limit`) and the total row count of a DataFrame, index included."""
    shown = frame.reset_index() if not isinstance(frame.index, pd.RangeIndex) else frame
    counts = [c for c in shown.columns if str(c) in COUNT_COLUMNS and pd.api.types.is_float_dtype(shown[c])
              and bool(np.all(np.isnan(shown[c]) | (shown[c] == np.round(shown[c]))))]
    if counts:
        shown = shown.astype({c: "Int64" for c in counts})
    header = [str(c) for c in shown.columns]
    rows = shown.head(limit).to_numpy().tolist()
    return header, rows, len(shown)
