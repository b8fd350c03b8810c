"""Analyzers: one module each, registered by decorator in the order they run."""

from audit.analyzers import performance  # noqa: F401  (registers the analyzer)
from audit.analyzers import saliency  # noqa: F401
from audit.analyzers import shap_values  # noqa: F401
from audit.analyzers import lime_weights  # noqa: F401
from audit.analyzers import explanation_quality  # noqa: F401
from audit.analyzers import robustness  # noqa: F401
from audit.analyzers import fairness  # noqa: F401
from audit.analyzers.base import ANALYZERS, Analyzer, Figure, Finding, MetricSpec, Result, register_analyzer
from audit.analyzers.performance import Performance

__all__ = ["ANALYZERS", "Analyzer", "Figure", "Finding", "MetricSpec", "Performance", "Result", "register_analyzer"]
