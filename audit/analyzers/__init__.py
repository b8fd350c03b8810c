"""Analyzers: one module each, registered by decorator in the order they run."""

from audit.analyzers.performance import analyzer as performance  # noqa: F401  (registers the analyzer)
from audit.analyzers.saliency import analyzer as saliency  # noqa: F401
from audit.analyzers.shap_values import analyzer as shap_values  # noqa: F401
from audit.analyzers.lime_weights import analyzer as lime_weights  # noqa: F401
from audit.analyzers.explanation_quality import analyzer as explanation_quality  # noqa: F401
from audit.analyzers.robustness import analyzer as robustness  # noqa: F401
from audit.analyzers.fairness import analyzer as fairness  # noqa: F401
from audit.analyzers.slices import analyzer as slices  # noqa: F401
from audit.core.analyzer import ANALYZERS, Analyzer, register_analyzer
from audit.core.result import Figure, Finding, MetricSpec, Result
from audit.analyzers.performance.analyzer import Performance

__all__ = ["ANALYZERS", "Analyzer", "Figure", "Finding", "MetricSpec", "Performance", "Result", "register_analyzer"]
