"""Performance: accuracy, per-class precision and recall, confusion matrix, calibration."""
