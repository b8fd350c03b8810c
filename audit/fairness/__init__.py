"""Fairness machinery behind the `fairness` analyzer: groups, group metrics via fairlearn,
the vectorized bootstrap of disparities, text counterfactual probes and a mitigation preview."""
