"""Attribution methods (captum, shap, lime) behind one registry; each module registers its own."""

from audit.attributions.registry import AttributionMethod, get_method, list_methods, register_method

__all__ = ["AttributionMethod", "get_method", "list_methods", "register_method"]
