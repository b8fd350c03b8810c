"""The report renders what results declare (headline metrics, drivers, gallery figures, table notes, tables a figure
shows, section titles) and names no analyzer; an errored analyzer leads the verdict in every output."""

from __future__ import annotations

import ast
import dataclasses
import re
from pathlib import Path

import pandas as pd
import pytest

import audit
from audit.core.analyzer import ANALYZERS
from audit.core.result import Figure, Finding, Result
from audit.executor.runner import AuditRun
from audit.mitigation.sweep import SECTION
from audit.policy.gates import Policy, Verdict
from audit.report.ci import render_markdown
from audit.report.html import render_result, render_run

REPORT = Path(audit.__file__).parent / "report"
PNG = b"\x89PNG" + b"0" * 64


def report_sources() -> dict[Path, str]:
    return {path: path.read_text(encoding="utf-8") for path in sorted(REPORT.rglob("*"))
            if path.is_file() and path.suffix in (".py", ".j2", ".css")}


def analyzer_names() -> set[str]:
    """Every registered analyzer's name, metric prefix (with its dot), metric and headline, and the sweep's section."""
    assert len(ANALYZERS.classes()) >= 7  # every analyzer is registered: the check covers them all
    names = {SECTION}
    for cls in ANALYZERS.classes():
        names |= {cls.name, cls.metric_prefix + ".", *cls.metrics, *cls.headline}
    return names


def named(text: str, names: set[str]) -> list[str]:
    return [name for name in sorted(names) if re.search(rf"(?<![\w.]){re.escape(name)}(?!\w)", text, re.IGNORECASE)]


def test_report_names_no_analyzer_metric_or_section():
    names = analyzer_names()
    assert [(path.name, named(text, names)) for path, text in report_sources().items() if named(text, names)] == []


@pytest.mark.parametrize("planted, name", [
    ('KEY_METRICS = ("performance.balanced_accuracy",)', "performance.balanced_accuracy"),
    ('if result.analyzer != "fairness":', "fairness"),
    ('name = metric.startswith("Robustness.")', "robustness."),
    ('SECTION_TITLES = {"mitigation_sweep": "Mitigation trade-off"}', "mitigation_sweep"),
])
def test_the_name_check_finds_a_planted_name(planted, name):
    assert name in named(planted, analyzer_names())


def test_report_imports_no_analyzer_or_method():
    imported = set()
    for path, text in report_sources().items():
        if path.suffix == ".py":
            for node in ast.walk(ast.parse(text)):
                if isinstance(node, ast.ImportFrom) and node.module:
                    imported.add(node.module)
                elif isinstance(node, ast.Import):
                    imported |= {alias.name for alias in node.names}
    assert "audit.core.analyzer" in imported  # the generic registry: titles
    assert not [m for m in imported if m.startswith(("audit.analyzers", "audit.methods", "audit.mitigation"))]


def run_of(*results: Result, verdict: Verdict | None = None) -> AuditRun:
    run = AuditRun(model={"path": "m.pt", "architecture": "mlp", "modality": "tabular", "sha256": "0", "classes": []},
                   data={"name": "d", "rows": 10, "sha256": "0", "sensitive": []}, results=results,
                   verdict=Verdict("ungated"))
    return dataclasses.replace(run, verdict=verdict or Policy().evaluate(run))


def section(result: Result, **changes) -> str:
    return render_result(dataclasses.replace(result, **changes))


SITES = pd.DataFrame({"site": ["east", "north"], "accuracy": [0.37, 0.84]})
DECLARED = Result(analyzer="performance", metrics={"performance.accuracy": 0.7, "performance.macro_f1": 0.6},
                  tables={"by_site": SITES, "matrix": SITES},
                  figures=(Figure("Overview plot", "the whole", PNG), Figure("Panels plot", "each one", PNG)))


@pytest.mark.parametrize("gallery", [True, False])
def test_a_gallery_figure_is_folded_below_the_summary_figures(gallery):
    figures = (DECLARED.figures[0], dataclasses.replace(DECLARED.figures[1], gallery=gallery))
    html = section(DECLARED, figures=figures)
    folded = re.findall(r'<details class="gallery">\s*<summary>([^<]*)</summary>', html)
    assert folded == (["Panels plot (per example)"] if gallery else [])
    assert html.count("<figure>") == 2 and html.index("Overview plot") < html.index("Panels plot")


def test_a_note_shows_under_its_table_and_a_table_a_figure_shows_is_left_out():
    html = section(DECLARED, notes={"by_site": "Sites <b>washed</b> out"}, figure_tables=("matrix",))
    table = html[html.index("Table: by site"):]
    assert table.index("Sites &lt;b&gt;washed&lt;/b&gt; out.") < table.index("<table")
    assert "Table: matrix" not in html
    plain = section(DECLARED)
    assert "washed" not in plain and "Table: matrix" in plain


def test_key_numbers_are_the_headline_metrics_with_their_drivers():
    driven = dataclasses.replace(DECLARED, drivers={"performance.accuracy": "site: east vs north (accuracy)"})
    html = render_run(run_of(driven))
    key = html[html.index("Key numbers"):html.index("</table>", html.index("Key numbers"))]
    assert "performance.<wbr>accuracy" in key and "driven by site: east vs north (accuracy)" in key
    assert "macro_<wbr>f1" not in key  # a metric not in the analyzer's headline is left to its section
    assert "driven by" not in render_run(run_of(DECLARED))


def test_a_section_no_analyzer_makes_is_titled_by_its_result():
    html = render_run(run_of(DECLARED, Result(analyzer="trade_off", title="Accuracy against cost")))
    assert 'href="#section-trade_off">Accuracy against cost</a>' in html
    assert '<h2 id="title-trade_off">Accuracy against cost' in html
    assert '<h2 id="title-performance">Performance' in html


ERRORED = Result(analyzer="fairness", status="error", error="no column 'site'")
HIGH = Finding("high", "Accuracy for east is 47 points below north's.", ("performance.accuracy",))


def test_an_errored_analyzer_leads_the_verdict_box_and_the_markdown():
    run = run_of(dataclasses.replace(DECLARED, findings=(HIGH,)), ERRORED)
    html = render_run(run)
    box = html[html.index('id="verdict"'):html.index("</p>", html.index('id="verdict"'))]
    assert 'Not judged, errored: <a href="#section-fairness">Fairness</a>' in box
    assert html.index('id="verdict"') < html.index("47 points below") < html.index('class="run-status"')
    text = render_markdown(run)
    assert text.index("errored: no column") < text.index("**Findings**")
    clean = render_run(run_of(DECLARED))
    assert "Not judged" not in clean and "errored" not in render_markdown(run_of(DECLARED))


def test_an_incomplete_verdict_is_styled_as_an_error():
    incomplete = Verdict("incomplete", errored_analyzers=("fairness",))
    html = render_run(run_of(DECLARED, ERRORED, verdict=incomplete))
    assert 'class="verdict verdict-incomplete"' in html
    css = (REPORT / "templates" / "report.css").read_text()
    rule = next(line for line in css.splitlines() if ".verdict-incomplete" in line)
    assert ".verdict-error" in rule  # one rule: the same colour as an error
