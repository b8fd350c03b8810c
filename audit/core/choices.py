"""The names of the fairness constraints and of the fairness-aware training methods, in a module that imports
nothing: the command line's help lists them without loading numpy or torch."""

CONSTRAINTS = ("demographic_parity", "equalized_odds")
FAIR_METHODS = ("reweighing", "lagrangian", "adversarial_debiasing")
