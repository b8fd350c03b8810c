"""Fairness machinery behind the `fairness` analyzer: groups, group metrics via fairlearn,
score intervals of disparities, text counterfactual probes and a mitigation preview."""
