"""Rendering: HTML (jinja2, autoescaped), JUnit, Markdown. It renders the typed results, findings and verdict it
is given and runs nothing; importing it lets every Result show itself in a notebook."""

from audit.core.result import set_html_formatter
from audit.report.html import render_result

set_html_formatter(render_result)
