"""Mitigation: changing a model so that it passes a fairness or robustness gate.

thresholds / postprocess: group-specific thresholds applied when the model predicts;
fair_training / adversarial_training: what one training step does for each method;
retrain: a checkpoint trained again, as it records, with a fairness method.
workflow: `audit.mitigate`, what `audit mitigate` does: a model fixed by one method and compared with
the original.
"""
