"""Judgement: gates read from TOML and the verdict they give a run (gates.py), the thresholds findings are judged
by and the built-in default policy (thresholds.py), the catalog of gateable metrics."""
