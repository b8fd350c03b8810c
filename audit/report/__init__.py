"""Rendering of audit runs: HTML (jinja2, autoescaped), figures, and file writers."""
