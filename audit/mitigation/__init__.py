"""Mitigation: changing a model so that it passes a fairness or robustness gate.

postprocess: group-specific thresholds applied when the model predicts;
adversarial_training: the training loop's hook for PGD adversarial training (fairness-aware training is plain
training: `audit.models.fair_training`);
retrain: a checkpoint trained again, as it records, with a fairness method or adversarial training.
workflow: `audit.mitigate`, what `audit mitigate` does: a model fixed by one method and compared with
the original.
"""
