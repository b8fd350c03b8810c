"""Fairness: per-group metrics and disparities with intervals, intersections, counterfactual probes."""
