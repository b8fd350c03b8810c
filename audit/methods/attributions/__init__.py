"""Attribution methods (captum, shap, lime) behind one registry; each module registers its own.

What the explanation analyzers share lives beside them: `methods` (which methods run),
`sampling` (explained examples, training rows, seeding), `targets` (the explained class),
`summary` (attributions per raw column, pixel or word) and `figures`.
"""

from audit.methods.attributions.registry import AttributionMethod, get_method, list_methods, register_method
from audit.methods.attributions import captum_methods  # noqa: F401,E402  (registers its methods)
from audit.methods.attributions import shap_method  # noqa: F401,E402
from audit.methods.attributions import lime_method  # noqa: F401,E402

__all__ = ["AttributionMethod", "get_method", "list_methods", "register_method"]
