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

from audit.core.result import Result
from audit.core.result import worst_severity

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
    env.globals["title_of"] = analyzer_title
    env.globals["table_rows"] = table_rows
    env.filters["breakable"] = breakable
    env.globals["headline"] = headline_metrics
    env.globals["key_numbers"] = key_numbers
    env.globals["meaning"] = meaning
    env.globals["worst"] = worst_severity
    env.globals["is_gallery"] = is_gallery
    env.globals["shown_tables"] = shown_tables
    env.globals["table_note"] = table_note
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


# The few numbers the summary leads with, in this order, where a run has them.
KEY_METRICS = (
    "performance.balanced_accuracy", "performance.accuracy", "performance.ece",
    "fairness.equalized_odds_difference", "fairness.demographic_parity_difference",
    "fairness.counterfactual_flip_rate",
    "robustness.robust_accuracy", "robustness.text_attack_success_rate", "robustness.corruption_accuracy",
    "explanations.agreement",
)
# Worst-case fairness metrics and the group rate whose extremes drive them.
DRIVING_RATE = {"demographic_parity_difference": ("selection_rate",), "equalized_odds_difference": ("tpr", "fpr")}


def key_numbers(run: AuditRun) -> list[dict]:
    """The summary's key numbers: value, interval, meaning, which way is better and, for a
    worst case over sensitive features, the feature and group pair that drive it."""
    from audit.policy.gates import find_metric_spec

    rows = []
    for result in run.results:
        for name in KEY_METRICS:
            if name not in result.metrics:
                continue
            spec = find_metric_spec(name)
            rows.append({"metric": name, "value": result.metrics[name], "interval": result.intervals.get(name),
                         "meaning": spec.description if spec else "", "better": spec.better if spec else "",
                         "driver": _driver(result, name)})
    return rows


def _driver(result: Result, name: str) -> str:
    metric = name.split(".", 1)[1]
    if result.analyzer != "fairness" or metric not in DRIVING_RATE:
        return ""
    value = result.metrics[name]
    feature = next((n.split(".", 1)[1].rsplit(".", 1)[0] for n, v in result.metrics.items()
                    if n.endswith("." + metric) and n != name and v == value and "&" not in n), None)
    groups = result.tables.get("groups")
    if feature is None:
        return ""
    if groups is None or "class" in groups.columns:
        return feature
    used = [str(g) for g in result.details.get("groups_used", {}).get(feature, [])]
    rows = groups[(groups["feature"] == feature) & groups["group"].astype(str).isin(used)]
    if len(rows) < 2:
        return feature
    rows = rows.set_index(rows["group"].astype(str))
    rate = max(DRIVING_RATE[metric], key=lambda r: np.nan_to_num(rows[r].max() - rows[r].min(), nan=-1.0))
    if rows[rate].notna().sum() < 2:
        return feature
    return f"{feature}: {rows[rate].idxmin()} vs {rows[rate].idxmax()} ({rate.replace('_', ' ')})"


def meaning(name: str) -> str:
    from audit.policy.gates import find_metric_spec

    spec = find_metric_spec(name)
    return f"{spec.description} ({spec.better} is better)" if spec else ""


def breakable(name) -> Markup:
    """A metric name, escaped, that may wrap after a dot or underscore but never inside a word."""
    return Markup(str(escape(name)).replace(".", ".<wbr>").replace("_", "_<wbr>"))


def is_gallery(figure) -> bool:
    """Per-example panels: shown folded, below the section's summary figures."""
    return "example" in figure.title.lower() or figure.title == "Token attributions"


# Sections a document adds beside its analyzers' results.
SECTION_TITLES = {"mitigation_sweep": "Mitigation trade-off"}


def analyzer_title(name: str) -> str:
    return ANALYZERS.get(name).title if name in ANALYZERS else SECTION_TITLES.get(name, name)


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


# Count columns: shown as whole numbers even where they were summed as floats (33, not 33.000).
COUNT_COLUMNS = {"count", "support", "tn", "fp", "fn", "tp", "examples", "words_changed", "rows"}
# Tables whose caption needs a note the analyzer keeps in its details: table name -> details key.
TABLE_NOTES = {"mitigation_preview_(model_unchanged)": "mitigation_preview"}


def shown_tables(result: Result) -> dict[str, pd.DataFrame]:
    """The tables the HTML shows: those a figure already shows are left to the JSON."""
    hidden = set(result.details.get("tables_shown_as_figures", ()))
    return {name: frame for name, frame in result.tables.items() if name not in hidden}


def table_note(result: Result, name: str) -> str:
    return str(result.details.get(TABLE_NOTES.get(name, ""), ""))


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
