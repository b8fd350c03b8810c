"""LIME: local linear surrogates of the explained class, from the lime library.

The weights come from `audit.methods.attributions.lime_method` (tables: model-space features;
images: superpixel (or, for small images, grid) segments spread over their pixels; text: token positions); the ranking
and figures are the SHAP analyzer's too (`audit.methods.attributions.summary`, `audit.methods.attributions.figures`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from audit.core.analyzer import Analyzer, Cost, Probed, UNPROBED, register_analyzer

from audit.core.result import MetricSpec, Result
from audit.methods.attributions.figures import TOP_FEATURES, examples_figure, importance_figure
from audit.methods.attributions.lime_method import DEFAULT_GRID, DEFAULT_SAMPLES, explain_lime
from audit.methods.attributions.per_example import top_attributions
from audit.methods.attributions.sampling import explained_samples
from audit.methods.attributions.summary import importance_table
from audit.methods.attributions.targets import class_index


@register_analyzer
@dataclass(frozen=True, kw_only=True)
class Lime(Analyzer):
    """LIME weights of the predicted class (or of `target`, a class name) for `samples`
    examples drawn (seeded) from the data, each from `num_samples` perturbations scored
    in one batch; images are cut into SLIC superpixels, or a `grid` x `grid` grid of segments
    when smaller than 32 pixels a side."""

    samples: int = 10
    num_samples: int = DEFAULT_SAMPLES
    grid: int = DEFAULT_GRID
    target: str | None = None

    name = "lime"
    concern = "Explanations"
    title = "LIME"
    description = "LIME weights of the explained class (tabular, superpixel image and token explainers)"
    metric_prefix = "lime"
    metrics = {
        "lime.mean_fit_r2": MetricSpec(
            "mean R^2 of lime's local linear surrogate on its perturbations (how well weights describe the model)",
            "higher"),
        "lime.min_fit_r2": MetricSpec("lowest R^2 of lime's local surrogate over the explained examples", "higher"),
    }

    def cost(self, model, rows: int, *, probed: Probed = UNPROBED) -> Cost:
        """`num_samples` perturbations per example, scored forward; tables share one set among the examples."""
        n = min(self.samples, rows)
        forward = n + self.num_samples if model.modality == "tabular" else n * self.num_samples
        return Cost(forward=forward, seconds=0.3)  # the fits and figures: 0.2-0.4 CPU s on the reference models

    def run(self, model, data, *, seed: int = 0) -> Result:
        rows = explained_samples(model, data, self.samples, seed=seed, misclassified=False)
        subset = data.subset(rows)
        explanation = explain_lime(model, subset, class_index(model, self.target), seed=seed,
                                   num_samples=self.num_samples, grid=self.grid)
        importance = importance_table(explanation.values, model, subset, value="mean_abs_weight")
        score = explanation.score[np.isfinite(explanation.score)]
        arrays = {"values": explanation.values, "intercept": explanation.intercept, "score": explanation.score,
                  "target": explanation.target, "rows": rows}
        if explanation.segments is not None:
            arrays["segments"] = explanation.segments
        unit = {"tabular": "per standard deviation of a standardized feature (or for keeping a category)",
                "image": "per pixel (a segment's weight spread over its pixels)",
                "text": "for keeping the token"}[model.modality]
        return Result(
            analyzer=self.name,
            metrics={"lime.mean_fit_r2": float(score.mean()), "lime.min_fit_r2": float(score.min())},
            tables={"importance": importance},
            arrays=arrays,
            figures=(
                importance_figure(importance[["mean_abs_weight"]], xlabel="mean |LIME weight|",
                                  title="LIME feature importance", caption=(
                    f"Mean |LIME weight| over {len(rows)} explained examples, top {TOP_FEATURES}. A weight is the "
                    f"change in the explained class's probability {unit} in lime's local linear surrogate.")),
                examples_figure(explanation.values, model, subset, explanation.target, title="LIME per example",
                                caption=("LIME weights of the explained class for the first explained examples: "
                                         "red raises its probability, blue lowers it.")),
            ),
            config=self.config(),
            details={"perturbations": explanation.background, "examples": len(rows),
                     "num_samples": self.num_samples},
            examples=top_attributions(model, subset, explanation.values, "lime").assign(
                **{"lime.fit_r2": explanation.score}).set_axis(pd.Index(rows, name="row")),
        )
