"""Saliency: captum attributions per example and a global importance ranking.

Each configured attribution method explains the target class (the predicted one by
default) of a seeded choice of examples that includes misclassified ones. Global
importance is each feature's share of the total |attribution| mass over those
examples: per raw column for tables (a one-hot column counts for its source column
when it is the row's category), per pixel for images, per word for text.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from audit.core.analyzer import Analyzer, Cost, Probed, UNPROBED, register_analyzer

from audit.core.result import MetricSpec, Result
from audit.methods.attributions.figures import (TOKEN_LINES, TOP_FEATURES, image_grid, importance_figure,
                                       mean_map_figure, token_figure)
from audit.methods.attributions.methods import attribute_all, attribution_cost, methods_for
from audit.methods.attributions.per_example import top_attributions
from audit.methods.attributions.sampling import explained_samples, misclassified_count
from audit.methods.attributions.summary import feature_groups, group_sums, token_values
from audit.methods.attributions.targets import class_index
from audit.core.dataset import Dataset

EXAMPLES_IN_FIGURES = 8
TABLE_ROWS = 100  # of the importance table; images keep their whole map in `arrays`


@register_analyzer
@dataclass(frozen=True, kw_only=True)
class SaliencyAnalyzer(Analyzer):
    """Which inputs drive each decision, by gradient and perturbation attributions (captum)."""

    methods: tuple[str, ...] | None = None
    samples: int = 32
    target: int | str | None = None

    name = "saliency"
    concern = "Explanations"
    title = "Saliency"
    description = "captum attributions (Integrated Gradients, Saliency, GradientSHAP, Grad-CAM, ...) per example " \
                  "and a global importance ranking"
    metric_prefix = "saliency"
    metrics = {
        "saliency.<method>.top_feature_share": MetricSpec(
            "share of the total |attribution| on the single most important feature (column, pixel or word); "
            "high values mean the model leans on one input", "lower"),
    }

    def cost(self, model, rows: int, *, probed: Probed = UNPROBED) -> Cost:
        n = min(self.samples, rows)
        own = 0.6 if model.modality == "image" else 0.15  # the figures: CPU s on digits-cnn, adult-mlp
        return Cost(forward=n, seconds=own) + attribution_cost(model, self.methods) * n

    def run(self, model, data, *, seed: int = 0) -> Result:
        methods, warnings = methods_for(model, self.methods)
        chosen = explained_samples(model, data, self.samples, seed=seed)
        subset = data.subset(chosen)
        proba = model.predict_proba(subset)
        predicted = proba.argmax(axis=1)
        target_class = class_index(model, self.target)
        target = predicted if target_class is None else np.full(len(chosen), target_class)
        attributions, failed = attribute_all(model, subset, methods, target, seed=seed)
        warnings += failed
        importance = {m: global_importance(model, subset, a) for m, a in attributions.items()}
        classes = np.asarray(model.classes, dtype=object)  # the table names classes, as the figures do
        labels = model.labels(subset)
        samples = pd.DataFrame({
            "index": chosen, "label": classes[labels], "predicted": classes[predicted], "target": classes[target],
            "target_probability": proba[np.arange(len(chosen)), target], "correct": labels == predicted,
        })
        metrics = {f"saliency.{m}.top_feature_share": float(imp["share"].max()) for m, imp in importance.items()}
        tables = {"samples": samples}
        table = importance_table(importance) if importance else None
        if table is not None:
            tables["importance"] = table.head(TABLE_ROWS)
        maps = {f"importance.{m}": pixel_shares(a) for m, a in attributions.items()} \
            if model.modality == "image" else {}
        return Result(
            analyzer=self.name,
            metrics=metrics,
            tables=tables,
            arrays={"samples": chosen, "targets": target, **maps,
                    **{f"attributions.{m}": a for m, a in attributions.items()}},
            figures=figures(model, subset, samples, attributions, table),
            config=self.config(),
            details={"methods": list(attributions), "samples": len(chosen),
                     "misclassified": int((~samples["correct"]).sum())},
            warnings=tuple(warnings),
            examples=_per_example(model, subset, attributions, chosen),
        )


def _per_example(model, subset: Dataset, attributions: dict, chosen: np.ndarray) -> pd.DataFrame | None:
    """Each explained example's top attributed inputs per method (`saliency.<method>.top_features`/`top_values`)."""
    if not attributions:
        return None
    frames = [top_attributions(model, subset, a, f"saliency.{m}") for m, a in attributions.items()]
    return pd.concat(frames, axis=1).set_axis(pd.Index(chosen, name="row"))


# -- global importance -----------------------------------------------------------------------


def global_importance(model, data: Dataset, attributions: np.ndarray) -> pd.DataFrame:
    """Each feature's share of the total |attribution| mass (one row per feature, best first)."""
    mass = np.abs(attributions)
    if model.modality == "tabular":
        # A category a row does not have counts nothing: else gradient methods would add up the
        # sensitivity to every other category, inflating columns with many categories.
        one_hot = ~model.encoder.continuous_mask(data)
        mass = np.where(one_hot & (model.encode(data).numpy() == 0), 0.0, mass)
        names, groups = feature_groups(model, data)
        frame = pd.DataFrame({"feature": names, "mass": group_sums(mass.sum(axis=0), groups)})
    elif model.modality == "image":
        pixels = mass.sum(axis=(0, 1))
        h, w = pixels.shape
        frame = pd.DataFrame({"feature": [f"{r},{c}" for r in range(h) for c in range(w)], "mass": pixels.ravel()})
    else:
        frame = token_values(model, data, mass).groupby("feature", sort=False)["value"] \
            .agg(["sum", "count"]).reset_index().rename(columns={"sum": "mass"})
    total = frame["mass"].sum()
    frame["share"] = frame["mass"] / total if total > 0 else 0.0
    return frame.sort_values("share", ascending=False, kind="stable").reset_index(drop=True)


def pixel_shares(attributions: np.ndarray) -> np.ndarray:
    """(H, W): each pixel's share of the total |attribution| (the whole global ranking of an image model)."""
    mass = np.abs(attributions).sum(axis=(0, 1))
    return mass / mass.sum() if mass.sum() > 0 else mass


def importance_table(importance: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Share of |attribution| per feature (rows) and method (columns), ordered by the first method."""
    shares = {m: imp.set_index("feature")["share"] for m, imp in importance.items()}
    table = pd.DataFrame(shares)
    first = next(iter(importance))
    table = table.loc[importance[first]["feature"]]
    table.index.name = "feature"
    if "count" in importance[first]:
        table.insert(0, "count", importance[first].set_index("feature")["count"])
    return table


# -- figures ----------------------------------------------------------------------------------


def figures(model, data: Dataset, samples: pd.DataFrame, attributions: dict, table: pd.DataFrame) -> tuple:
    if not attributions:
        return ()
    first = next(iter(attributions))
    if model.modality == "image":
        maps = {m: pixel_shares(a) for m, a in attributions.items()}
        out = [mean_map_figure(maps, title="Global importance", caption=(
            "Where the model looks: each pixel's share of the total absolute attribution over the explained "
            "examples, one map per method on one colour scale (bright = relied on). Methods that agree give "
            "similar maps."))]
    else:
        unit = {"tabular": "column", "text": "word"}[model.modality]
        out = [importance_figure(
            table.drop(columns="count", errors="ignore"), xlabel="share of total |attribution|",
            title="Global importance", caption=(
                f"The {min(TOP_FEATURES, len(table))} most important inputs (one bar per {unit}, ranked by "
                f"{first}) and their share of the total absolute attribution over the explained examples, per "
                "method. Long bars are the inputs the model relies on; methods that agree give bars of similar "
                "length."))]
    positions = _examples_to_show(samples)
    shown = samples.iloc[positions]
    correct = shown["correct"].to_numpy()
    colors = ["black" if ok else "red" for ok in correct]
    if model.modality == "image":
        labels = [f"{'ok' if ok else 'WRONG'}: {t}->{p}"
                  for ok, t, p in zip(correct, shown["label"], shown["predicted"])]
        out.append(image_grid(data.inputs[positions], {m: a[positions] for m, a in attributions.items()}, labels,
                              signed=False, label_colors=colors, title="Attributions on examples", caption=(
            "Each row is one explained image (first column: true -> predicted class, WRONG in red when "
            "misclassified); the other columns overlay each method's |attribution| for the explained class, "
            "bright = important, scaled per map. Correct and misclassified examples are both shown.")))
    elif model.modality == "text":
        labels = [f"{'ok' if ok else 'WRONG'}, predicted: {p}"
                  for ok, p in zip(correct, shown["predicted"])]
        tokens = [model.encoder.tokens(data.texts[pos]) for pos in positions]
        weights = [attributions[first][pos][: len(t)] for pos, t in zip(positions, tokens)]
        out.append(token_figure(tokens, weights, labels, label_colors=colors, title="Token attributions", caption=(
            f"{first.replace('_', ' ').capitalize()} per token for explained examples (above each: ok or WRONG, "
            "and the predicted class). Red tokens push towards the explained class, blue ones against it; the "
            f"shade is scaled per example. Long texts are cut after {TOKEN_LINES} lines.")))
    return tuple(out)


def _examples_to_show(samples: pd.DataFrame) -> np.ndarray:
    """Positions of up to EXAMPLES_IN_FIGURES examples, half correct and half misclassified where possible."""
    right = np.flatnonzero(samples["correct"].to_numpy())
    wrong = np.flatnonzero(~samples["correct"].to_numpy())
    n_wrong = misclassified_count(EXAMPLES_IN_FIGURES, wrong=len(wrong), right=len(right))
    return np.concatenate([right[: EXAMPLES_IN_FIGURES - n_wrong], wrong[:n_wrong]])
