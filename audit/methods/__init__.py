"""The algorithms the analyzers call: attributions (captum, shap, lime), robustness (attacks, corruptions, sanity
checks), fairness (group metrics, intervals, counterfactual probes, threshold fitting)."""
