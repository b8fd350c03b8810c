"""Mitigation: changing a model so that it passes a fairness or robustness gate (post-processing here)."""
