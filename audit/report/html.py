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
from markupsafe import Markup

from audit.analyzers.base import ANALYZERS, Result

if TYPE_CHECKING:
    from audit.compare import Comparison
    from audit.runner import AuditRun


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
    env.globals["title_of"] = analyzer_title
    env.globals["table_rows"] = table_rows
    env.globals["headline"] = headline_metrics
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


def headline_metrics(result: Result) -> dict[str, float]:
    """The metrics an analyzer declares by exact name (not per feature or per method): the key numbers."""
    declared = ANALYZERS.get(result.analyzer).metrics if result.analyzer in ANALYZERS else {}
    return {k: v for k, v in result.metrics.items() if k in declared}


def analyzer_title(name: str) -> str:
    return ANALYZERS.get(name).title if name in ANALYZERS else name


def format_number(value) -> str:
    if value is None:
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


def table_rows(frame: pd.DataFrame, limit: int = 200) -> tuple[list[str], list[list], int]:
    """Header, rows (at most `limit`) and the total row count of a DataFrame, index included."""
    shown = frame.reset_index() if not isinstance(frame.index, pd.RangeIndex) else frame
    header = [str(c) for c in shown.columns]
    rows = shown.head(limit).to_numpy().tolist()
    return header, rows, len(shown)
