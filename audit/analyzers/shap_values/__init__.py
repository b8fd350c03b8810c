"""SHAP: shap's explainers, explained class only, seeded and batched."""
