"""Fairness methods: group metrics from confusion cells (fairlearn's MetricFrame), score intervals, text
counterfactual probes, and group thresholds fitted by fairlearn's ThresholdOptimizer."""
