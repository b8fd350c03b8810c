"""Adversarial attacks, natural corruptions and attack sanity checks used by the robustness analyzer.

Every function here is a pure map over a batch: (model, inputs, labels, config, seed) in,
perturbed inputs or per-example outcomes out. Nothing changes the model's weights.
"""
