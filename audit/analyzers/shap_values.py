"""SHAP: Shapley-value attributions of the explained class, from the shap library.

The attributions come from `audit.attributions.shap_method`. This module picks the
examples, aggregates their values into a global ranking (per raw column for tables,
per word for text) and draws them. The ranking and the per-example figures are shared
with the LIME analyzer, which shows weights in the same shapes.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass

import numpy as np
import pandas as pd

from audit.analyzers.base import Analyzer, Figure, MetricSpec, Result, register_analyzer
from audit.attributions.shap_method import DEFAULT_BACKGROUND, DEFAULT_MAX_EVALS, explain_shap
from audit.errors import AuditInputError
from audit.report.plots import new_figure, to_figure

TOP_FEATURES = 15
EXAMPLES = 4


@register_analyzer
@dataclass(frozen=True, kw_only=True)
class Shap(Analyzer):
    """SHAP values of the predicted class (or of `target`, a class name) for `samples`
    examples drawn (seeded) from the data, against `background` training rows (tables,
    images) or hidden tokens (text, up to `max_evals` model calls per text)."""

    samples: int = 16
    background: int = DEFAULT_BACKGROUND
    max_evals: int = DEFAULT_MAX_EVALS
    target: str | None = None

    name = "shap"
    title = "SHAP"
    description = "SHAP values of the explained class (DeepExplainer; token permutations for text)"
    metric_prefix = "shap"
    metrics = {
        "shap.additivity_error": MetricSpec(
            "largest |sum of SHAP values + base value - model output| over the explained examples", "lower"),
        "shap.top_feature_share": MetricSpec(
            "share of the total mean |SHAP| held by the most important feature (column, pixel or word)", "lower"),
    }

    def run(self, model, data, *, seed: int = 0) -> Result:
        rows = sample_rows(data, self.samples, seed=seed)
        subset = data.subset(rows)
        target = class_index(model, self.target)
        explanation = explain_shap(model, subset, target, seed=seed, background=self.background,
                                   max_evals=self.max_evals)
        importance = importance_table(explanation.values, model, subset, value="mean_abs_shap")
        error = explanation.additivity_error
        unit = "logit" if explanation.output == "logit" else "probability"
        return Result(
            analyzer=self.name,
            metrics={
                "shap.additivity_error": float(error.max()),
                "shap.top_feature_share": float(importance.iloc[0, 0] / importance.iloc[:, 0].sum()),
            },
            tables={"importance": importance},
            arrays={"values": explanation.values, "base_values": explanation.base_values,
                    "outputs": explanation.outputs, "target": explanation.target, "rows": rows},
            figures=(
                importance_figure(importance, xlabel="mean |SHAP value|", title="SHAP feature importance", caption=(
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
                     "background": explanation.background, "examples": len(rows),
                     "mean_additivity_error": float(error.mean())},
            warnings=explanation.warnings,
        )


def sample_rows(data, samples: int, *, seed: int) -> np.ndarray:
    """Indices of at most `samples` rows, drawn without replacement (as `Dataset.sample`)."""
    if samples < 1:
        raise AuditInputError(f"samples must be at least 1, not {samples}")
    if samples >= len(data):
        return np.arange(len(data))
    return np.sort(np.random.default_rng(seed).choice(len(data), size=samples, replace=False))


def class_index(model, name: str | None) -> int | None:
    """The index of class `name`, or None (explain the predicted class)."""
    if name is None:
        return None
    if name not in model.classes:
        raise AuditInputError(f"target class {name!r} is not a class of the model {list(model.classes)}")
    return model.classes.index(name)


def importance_table(values: np.ndarray, model, data, *, value: str) -> pd.DataFrame:
    """Global importance, most important first: the mean over examples of |attribution|,
    summed per raw column for one-hot groups (tables), per pixel (images), and per word
    over its occurrences (text); `mean` keeps the sign."""
    if model.modality == "text":
        words, per_token = [], []
        for text, row in zip(data.texts, values):
            tokens = model.encoder.tokens(text)
            words += tokens
            per_token.append(row[: len(tokens)])
        frame = pd.DataFrame({"feature": words, "v": np.concatenate(per_token) if per_token else []})
        table = frame.groupby("feature")["v"].agg(
            **{value: lambda v: np.abs(v).mean(), "mean": "mean", "count": "size"})
    else:
        flat = values.reshape(len(values), -1)
        names, groups = feature_groups(model, data)
        grouped = np.stack([flat[:, g].sum(axis=1) for g in groups], axis=1)
        table = pd.DataFrame({value: np.abs(grouped).mean(axis=0), "mean": grouped.mean(axis=0)},
                             index=pd.Index(names, name="feature"))
    return table.sort_values(value, ascending=False, kind="stable")


def feature_groups(model, data) -> tuple[list[str], list[np.ndarray]]:
    """Raw column names and, for each, its model-space feature indices (a one-hot group for a category)."""
    names = model.feature_names(data)
    encoder = model.encoder
    if model.modality != "tabular" or encoder.passthrough:
        return names, [np.array([i]) for i in range(len(names))]
    groups = [np.array([i]) for i in range(len(encoder.numeric))]
    start = len(encoder.numeric)
    for cats in encoder.categorical.values():
        groups.append(np.arange(start, start + len(cats)))
        start += len(cats)
    return list(encoder.columns), groups


def importance_figure(table: pd.DataFrame, *, xlabel: str, title: str, caption: str) -> Figure:
    top = table.head(TOP_FEATURES).iloc[::-1]
    fig, ax = new_figure(5.6, 1.2 + 0.28 * len(top))
    ax.barh([textwrap.shorten(str(f), 32) for f in top.index], top.iloc[:, 0], color="#4c78a8")
    ax.set_xlabel(xlabel)
    return to_figure(fig, title=title, caption=caption)


def examples_figure(values: np.ndarray, model, data, target: np.ndarray, *, title: str, caption: str) -> Figure:
    """The first few explained examples: heatmaps beside the images, colored tokens, or signed bars."""
    n = min(EXAMPLES, len(values))
    classes = model.classes
    if model.modality == "image":
        fig, axes = new_figure(2.2 * n, 4.4, nrows=2, ncols=n, squeeze=False)
        for i in range(n):
            image = data.inputs[i]
            axes[0, i].imshow(image.transpose(1, 2, 0) if image.shape[0] == 3 else image[0], cmap="gray")
            axes[0, i].set_title(f"explained: {classes[target[i]]}", fontsize=8)
            heat = values[i].sum(axis=0)
            limit = float(np.abs(heat).max()) or 1.0
            axes[1, i].imshow(heat, cmap="bwr", vmin=-limit, vmax=limit)
            for ax in axes[:, i]:
                ax.set_xticks([])
                ax.set_yticks([])
    elif model.modality == "text":
        fig, axes = new_figure(7.5, 1.1 * n + 0.4, nrows=n, squeeze=False)
        for i in range(n):
            tokens = model.encoder.tokens(data.texts[i])
            _colored_tokens(axes[i, 0], tokens, values[i, : len(tokens)], f"explained: {classes[target[i]]}")
    else:
        names, groups = feature_groups(model, data)
        fig, axes = new_figure(3.4 * n, 3.6, ncols=n, squeeze=False)
        for i in range(n):
            contributions = np.array([values[i][g].sum() for g in groups])
            order = np.argsort(-np.abs(contributions))[:8][::-1]
            axes[0, i].barh([textwrap.shorten(names[j], 20) for j in order], contributions[order],
                            color=["#d62728" if contributions[j] > 0 else "#1f77b4" for j in order])
            axes[0, i].axvline(0, color="#444", linewidth=0.8)
            axes[0, i].set_title(f"example {i + 1}, explained: {classes[target[i]]}", fontsize=8)
            axes[0, i].tick_params(labelsize=7)
    return to_figure(fig, title=title, caption=caption)


def _colored_tokens(ax, tokens: list[str], weights: np.ndarray, label: str, width: int = 100) -> None:
    """Tokens in a monospace font, each on a background colored by its signed weight; `width`
    is in characters (an 8-point monospace character is about 1/15 inch)."""
    from matplotlib import cm

    limit = float(np.abs(weights).max()) if len(weights) else 1.0
    limit = limit or 1.0
    ax.set_axis_off()
    ax.set_xlim(0, width)
    ax.set_ylim(-3.5, 1)
    ax.text(0, 0.5, label, fontsize=7, color="#555")
    column, line = 0, 0
    for token, weight in zip(tokens, weights):
        if column + len(token) > width:
            column, line = 0, line + 1
        if line > 2:
            break
        color = cm.bwr(0.5 + 0.4 * weight / limit)  # the darkest shades would hide the text
        ax.text(column, -line - 0.5, token, family="monospace", fontsize=8,
                bbox={"facecolor": color, "edgecolor": "none", "pad": 1})
        column += len(token) + 1
