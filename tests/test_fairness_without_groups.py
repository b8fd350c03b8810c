"""Texts built in memory with no sensitive attributes: fairness still runs its counterfactual probe through the
executor (it failed there: the mitigation preview took group rows that data without sensitive columns lacks)."""

from __future__ import annotations

import audit


def test_texts_without_sensitive_columns_get_the_counterfactual_probe(reviews_lstm):
    reviews = audit.load_dataset("reviews", "test").sample(60, seed=0)
    data = audit.Dataset.from_arrays(list(reviews.texts), reviews.labels, classes=reviews.classes, modality="text")
    assert not data.sensitive_names
    result = audit.run(reviews_lstm, data, ["fairness"], seed=0).result("fairness")
    assert result.status == "ok", result.error
    assert "fairness.counterfactual_flip_rate" in result.metrics and "counterfactual_pairs" in result.tables
