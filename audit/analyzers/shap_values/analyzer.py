"""SHAP: Shapley-value attributions of the explained class, from the shap library.

The attributions come from `audit.methods.attributions.shap_method`. This module picks the
examples, aggregates their values into a global ranking (per raw column for tables,
per word for text) and draws them, with the summaries and figures the LIME analyzer
also uses (`audit.methods.attributions.summary`, `audit.methods.attributions.figures`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import pandas as pd
import torch

from audit.core.analyzer import Analyzer, Cost, Probed, UNPROBED, register_analyzer

from audit.core.result import MetricSpec, Result
from audit.methods.attributions.figures import EXAMPLES, TOP_FEATURES, examples_figure, importance_figure
from audit.methods.attributions.per_example import top_attributions
from audit.methods.attributions.sampling import explained_samples
from audit.methods.attributions.shap_method import (DEFAULT_BACKGROUND, DEFAULT_MAX_EVALS, deep_explainer_adds_up,
                                                    explain_shap)
from audit.methods.attributions.summary import importance_table
from audit.methods.attributions.targets import class_index
from audit.core.dataset import Dataset

OWN_SECONDS = 0.5  # the explainer's setup, tables and figures: 0.03-0.6 CPU s on the reference models
PILOT_ROWS = 4  # rows the pilot explains, against as many others as background


@register_analyzer
@dataclass(frozen=True, kw_only=True)
class Shap(Analyzer):
    """SHAP values of the predicted class (or of `target`, a class name) for `samples`
    examples drawn (seeded) from the data, against a background (tables, images) or hidden
    tokens (text, up to `max_evals` model calls per text). `background` is a row count, drawn
    from the model's training split, else from the whole audited data across its classes; or
    the rows themselves (a Dataset or a tensor of model inputs)."""

    samples: int = 16
    background: int | Dataset | torch.Tensor = DEFAULT_BACKGROUND
    max_evals: int = DEFAULT_MAX_EVALS
    target: str | None = None

    name = "shap"
    concern = "Explanations"
    title = "SHAP"
    description = "SHAP values of the explained class (DeepExplainer; token permutations for text)"
    metric_prefix = "shap"
    metrics = {
        "shap.additivity_error": MetricSpec(
            "largest |sum of SHAP values + base value - model output| over the explained examples; only for "
            "explainers that promise additivity (DeepExplainer, the token permutation explainer), absent when "
            "GradientExplainer (expected gradients) stood in", "lower"),
        "shap.top_feature_share": MetricSpec(
            "share of the total mean |SHAP| held by the most important feature (column, pixel or word)", "lower"),
    }

    def config(self) -> dict:
        """The options, with given background rows named by their count (not copied into the result)."""
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        if not isinstance(self.background, int):
            values["background"] = f"{len(self.background)} given rows"
        return values

    def pilot(self, model, data):
        """The explainer the run will use: DeepExplainer where its values add up to the model's output on a few of
        the probe's rows against a few others, else GradientExplainer (texts: none to choose)."""
        if model.modality == "text" or len(data) < 2:
            return None
        x = model.encode(data)
        half = min(PILOT_ROWS, len(x) // 2)
        return "DeepExplainer" if deep_explainer_adds_up(model, x[:half], x[half : 2 * half]) else "GradientExplainer"

    def cost(self, model, rows: int, *, probed: Probed = UNPROBED) -> Cost:
        """Text: `max_evals` forwards per text; else each example forward and back beside every background row
        (DeepExplainer, and expected gradients' 200 draws alike), the background forward once per class explained.
        Where the pilot found that DeepExplainer's values do not add up, the run tries it on the class with the
        fewest examples (about one class's share of them) before it falls back to GradientExplainer."""
        n = min(self.samples, rows)
        if model.modality == "text":
            return Cost(forward=n * self.max_evals, seconds=OWN_SECONDS)
        background = self.background if isinstance(self.background, int) else len(self.background)
        explained = Cost(forward=n + background * (n + min(n, len(model.classes))), backward=2 * n * background,
                         seconds=OWN_SECONDS)
        if probed.pilots.get(self.name, "DeepExplainer") == "DeepExplainer":
            return explained
        return explained + explained * (1 / len(model.classes))

    def run(self, model, data, *, seed: int = 0) -> Result:
        rows = explained_samples(model, data, self.samples, seed=seed, misclassified=False)
        subset = data.subset(rows)
        target = class_index(model, self.target)
        explanation = explain_shap(model, subset, target, seed=seed, background=self.background, pool=data,
                                   max_evals=self.max_evals)
        importance = importance_table(explanation.values, model, subset, value="mean_abs_shap")
        unit = "logit" if explanation.output == "logit" else "probability"
        metrics = {"shap.top_feature_share": float(importance.iloc[0, 0] / importance.iloc[:, 0].sum())}
        if explanation.additive:
            metrics["shap.additivity_error"] = float(explanation.additivity_error.max())
            additivity = {"mean_additivity_error": float(explanation.additivity_error.mean())}
        else:
            additivity = {"additivity": f"not reported: {explanation.explainer} does not promise that the values add "
                                        "up to the output"}
        return Result(
            analyzer=self.name,
            metrics=metrics,
            tables={"importance": importance},
            arrays={"values": explanation.values, "base_values": explanation.base_values,
                    "outputs": explanation.outputs, "target": explanation.target, "rows": rows},
            figures=(
                importance_figure(importance[["mean_abs_shap"]], xlabel="mean |SHAP value|",
                                  title="SHAP feature importance", caption=(
                    f"Mean |SHAP value| over {len(rows)} explained examples, top {TOP_FEATURES}. "
                    f"A SHAP value is the feature's share of the difference in the explained class's {unit} "
                    f"between the example and the background ({explanation.background}); longer bars mark "
                    "features the model leans on more.")),
                examples_figure(explanation.values, model, subset, explanation.target, title="SHAP per example",
                                caption=(f"SHAP values of the explained class for {min(EXAMPLES, len(rows))} "
                                         f"examples, in {unit} units: red pushes towards the class, blue away.")),
            ),
            config=self.config(),
            details={"explainer": explanation.explainer, "output": explanation.output,
                     "background": explanation.background, "examples": len(rows), **additivity},
            warnings=explanation.warnings,
            examples=top_attributions(model, subset, explanation.values, "shap").set_axis(
                pd.Index(rows, name="row")),
        )
