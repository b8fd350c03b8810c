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
from torch import nn

from audit.analyzers.base import Analyzer, MetricSpec, Result, register_analyzer
from audit.attributions import get_method
from audit.data.dataset import Dataset
from audit.data.encoders import TabularEncoder
from audit.errors import AuditInputError
from audit.explain import explain
from audit.report.plots import new_figure, to_figure

DEFAULT_METHODS = ("integrated_gradients", "saliency", "gradient_shap", "grad_cam")
EXAMPLES_IN_FIGURES = 8
TOP_IN_FIGURES = 15
TABLE_ROWS = 100  # of the importance table; images keep their whole map in `arrays`


def explained_samples(model, data: Dataset, n: int, *, seed: int) -> np.ndarray:
    """Sorted indices of at most `n` examples drawn with `seed`; up to half of them misclassified."""
    wrong = model.predict(data) != model.labels(data)
    rng = np.random.default_rng(seed)
    wrong_idx, right_idx = np.flatnonzero(wrong), np.flatnonzero(~wrong)
    n_wrong = min(len(wrong_idx), max(n // 2, n - len(right_idx)))
    n_right = min(len(right_idx), n - n_wrong)
    chosen = np.concatenate([rng.choice(wrong_idx, n_wrong, replace=False),
                             rng.choice(right_idx, n_right, replace=False)])
    return np.sort(chosen)


def methods_for(model, methods: tuple[str, ...] | None) -> tuple[list[str], list[str]]:
    """The methods to run on `model` and warnings for those that cannot: the defaults that fit
    the model when `methods` is None (Grad-CAM only for CNNs), else the named ones."""
    if methods is None:
        has_conv = any(isinstance(m, nn.Conv2d) for m in model.module.modules())
        names = [m for m in DEFAULT_METHODS if m != "grad_cam" or has_conv]
    else:
        names = list(dict.fromkeys(methods))
    runnable, warnings = [], []
    for name in names:
        if model.modality in get_method(name).modalities:
            runnable.append(name)
        else:
            warnings.append(f"{name} skipped: it does not support {model.modality} models")
    return runnable, warnings


def resolve_class(model, target: int | str | None) -> int | None:
    if target is None or isinstance(target, int):
        if target is not None and not 0 <= target < len(model.classes):
            raise AuditInputError(f"target class {target} is not in 0..{len(model.classes) - 1}")
        return target
    if target not in model.classes:
        raise AuditInputError(f"target class {target!r} is not a class of the model {list(model.classes)}")
    return model.classes.index(target)


def attribute_all(model, data: Dataset, methods: list[str], target, *, seed: int):
    """Attributions per method that ran, and a warning per method that could not run."""
    attributions, warnings = {}, []
    for name in methods:
        try:
            attributions[name] = explain(model, data, name, target, seed=seed)
        except AuditInputError as exc:
            warnings.append(f"{name} skipped: {exc}")
    return attributions, warnings


@register_analyzer
@dataclass(frozen=True, kw_only=True)
class SaliencyAnalyzer(Analyzer):
    """Which inputs drive each decision, by gradient and perturbation attributions (captum)."""

    methods: tuple[str, ...] | None = None
    samples: int = 32
    target: int | str | None = None

    name = "saliency"
    title = "Saliency"
    description = "captum attributions (Integrated Gradients, Saliency, GradientSHAP, Grad-CAM, ...) per example " \
                  "and a global importance ranking"
    metric_prefix = "saliency"
    metrics = {
        "saliency.<method>.top_feature_share": MetricSpec(
            "share of the total |attribution| on the single most important feature (column, pixel or word); "
            "high values mean the model leans on one input", "lower"),
    }

    def run(self, model, data, *, seed: int = 0) -> Result:
        methods, warnings = methods_for(model, self.methods)
        chosen = explained_samples(model, data, self.samples, seed=seed)
        subset = data.subset(chosen)
        proba = model.predict_proba(subset)
        predicted = proba.argmax(axis=1)
        target_class = resolve_class(model, self.target)
        target = predicted if target_class is None else np.full(len(chosen), target_class)
        attributions, failed = attribute_all(model, subset, methods, target, seed=seed)
        warnings += failed
        importance = {m: global_importance(model, subset, a) for m, a in attributions.items()}
        samples = pd.DataFrame({
            "index": chosen, "label": model.labels(subset), "predicted": predicted, "target": target,
            "target_probability": proba[np.arange(len(chosen)), target],
        })
        samples["correct"] = samples["label"] == samples["predicted"]
        metrics = {f"saliency.{m}.top_feature_share": float(imp["share"].max()) for m, imp in importance.items()}
        tables = {"samples": samples}
        if importance:
            tables["importance"] = importance_table(importance).head(TABLE_ROWS)
        maps = {f"importance.{m}": pixel_shares(a) for m, a in attributions.items()} \
            if model.modality == "image" else {}
        return Result(
            analyzer=self.name,
            metrics=metrics,
            tables=tables,
            arrays={"samples": chosen, "targets": target, **maps,
                    **{f"attributions.{m}": a for m, a in attributions.items()}},
            figures=figures(model, subset, samples, attributions, importance),
            config=self.config(),
            details={"methods": list(attributions), "samples": len(chosen),
                     "misclassified": int((~samples["correct"]).sum())},
            warnings=tuple(warnings),
        )


# -- global importance -----------------------------------------------------------------------


def global_importance(model, data: Dataset, attributions: np.ndarray) -> pd.DataFrame:
    """Each feature's share of the total |attribution| mass (one row per feature, best first)."""
    mass = np.abs(attributions)
    if model.modality == "tabular":
        # A category a row does not have counts nothing: else gradient methods would add up the
        # sensitivity to every other category, inflating columns with many categories.
        one_hot = ~model.encoder.continuous_mask(data) if isinstance(model.encoder, TabularEncoder) else False
        mass = np.where(one_hot & (model.encode(data).numpy() == 0), 0.0, mass)
        features = pd.Series(mass.sum(axis=0), index=raw_columns(model, data)).groupby(level=0, sort=False).sum()
        frame = pd.DataFrame({"feature": features.index, "mass": features.to_numpy()})
    elif model.modality == "image":
        pixels = mass.sum(axis=(0, 1))
        h, w = pixels.shape
        frame = pd.DataFrame({"feature": [f"{r},{c}" for r in range(h) for c in range(w)], "mass": pixels.ravel()})
    else:
        words, values = [], []
        for text, row in zip(data.texts, mass):
            tokens = model.encoder.tokens(text)
            words += tokens
            values += list(row[: len(tokens)])
        frame = pd.DataFrame({"feature": words, "mass": values}).groupby("feature", sort=False)["mass"] \
            .agg(["sum", "count"]).reset_index().rename(columns={"sum": "mass"})
    total = frame["mass"].sum()
    frame["share"] = frame["mass"] / total if total > 0 else 0.0
    return frame.sort_values("share", ascending=False, kind="stable").reset_index(drop=True)


def pixel_shares(attributions: np.ndarray) -> np.ndarray:
    """(H, W): each pixel's share of the total |attribution| (the whole global ranking of an image model)."""
    mass = np.abs(attributions).sum(axis=(0, 1))
    return mass / mass.sum() if mass.sum() > 0 else mass


def raw_columns(model, data: Dataset) -> list[str]:
    """The source column of each model-space feature (a one-hot feature maps to its column)."""
    encoder = model.encoder
    if not isinstance(encoder, TabularEncoder) or encoder.passthrough:
        return model.feature_names(data)
    return list(encoder.numeric) + [col for col, cats in encoder.categorical.items() for _ in cats]


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


def figures(model, data: Dataset, samples: pd.DataFrame, attributions: dict, importance: dict) -> tuple:
    if not attributions:
        return ()
    out = [_importance_figure(model, importance)]
    shown = _examples_to_show(samples)
    if model.modality == "image":
        out.append(_image_grid(data, samples, attributions, shown, model.classes))
    elif model.modality == "text":
        method = next(iter(attributions))
        out.append(_token_figure(model, data, samples, attributions[method], shown, method))
    return tuple(out)


def _examples_to_show(samples: pd.DataFrame) -> np.ndarray:
    """Positions of up to EXAMPLES_IN_FIGURES examples, half correct and half misclassified where possible."""
    right = np.flatnonzero(samples["correct"].to_numpy())
    wrong = np.flatnonzero(~samples["correct"].to_numpy())
    n_wrong = min(len(wrong), max(EXAMPLES_IN_FIGURES // 2, EXAMPLES_IN_FIGURES - len(right)))
    return np.concatenate([right[: EXAMPLES_IN_FIGURES - n_wrong], wrong[:n_wrong]])


def _importance_figure(model, importance: dict):
    first = next(iter(importance))
    top = list(importance[first]["feature"][:TOP_IN_FIGURES])
    methods = list(importance)
    fig, ax = new_figure(6.0, 1.2 + 0.3 * len(top))
    height = 0.8 / len(methods)
    for i, method in enumerate(methods):
        shares = importance[method].set_index("feature")["share"].reindex(top).fillna(0.0)
        ax.barh(np.arange(len(top)) + i * height, shares.to_numpy(), height=height, label=method)
    ax.set_yticks(np.arange(len(top)) + 0.4 - height / 2, [str(t)[:24] for t in top])
    ax.invert_yaxis()
    ax.set_xlabel("share of total |attribution|")
    ax.legend(fontsize=7, loc="lower right")
    unit = {"tabular": "column", "image": "pixel (row,column)", "text": "word"}[model.modality]
    return to_figure(fig, title="Global importance", caption=(
        f"The {len(top)} most important inputs (one bar per {unit}, ranked by {first}) and their share of the "
        "total absolute attribution over the explained examples, per method. Long bars are the inputs the model "
        "relies on; methods that agree give bars of similar length."))


def _image_grid(data: Dataset, samples: pd.DataFrame, attributions: dict, shown: np.ndarray, classes):
    methods = list(attributions)
    rows, cols = len(shown), 1 + len(methods)
    fig, axes = new_figure(1.3 * cols + 0.5, 1.35 * rows + 0.4, nrows=rows, ncols=cols, squeeze=False)
    images = data.inputs
    for r, pos in enumerate(shown):
        image = images[pos].mean(axis=0)
        row = samples.iloc[pos]
        axes[r, 0].imshow(image, cmap="gray")
        axes[r, 0].set_title(f"{'ok' if row['correct'] else 'WRONG'}: {classes[row['label']]}->"
                             f"{classes[row['predicted']]}", fontsize=7, color="black" if row["correct"] else "red")
        for c, method in enumerate(methods, start=1):
            heat = np.abs(attributions[method][pos]).sum(axis=0)
            axes[r, c].imshow(image, cmap="gray")
            axes[r, c].imshow(heat / max(heat.max(), 1e-12), cmap="inferno", alpha=0.6, vmin=0, vmax=1)
            if r == 0:
                axes[r, c].set_title(method.replace("_", " "), fontsize=7)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    return to_figure(fig, title="Attributions on examples", caption=(
        "Each row is one explained image (first column: true -> predicted class, WRONG in red when "
        "misclassified); the other columns overlay each method's |attribution| for the explained class, "
        "bright = important, scaled per map. Correct and misclassified examples are both shown."))


def _token_figure(model, data: Dataset, samples: pd.DataFrame, attributions: np.ndarray, shown: np.ndarray,
                  method: str):
    from matplotlib import colormaps

    cmap = colormaps["RdBu_r"]
    fig, ax = new_figure(8.0, 0.5 + 0.42 * len(shown))
    ax.set_axis_off()
    ax.set_xlim(0, 1)
    ax.set_ylim(len(shown), 0)
    for r, pos in enumerate(shown):
        tokens = model.encoder.tokens(data.texts[pos])[:24]
        values = attributions[pos][: len(tokens)]
        scale = max(np.abs(values).max(), 1e-12) if len(values) else 1.0
        row = samples.iloc[pos]
        mark = "ok" if row["correct"] else "WRONG"
        x = 0.0
        ax.text(x, r + 0.5, f"{mark} {model.classes[row['predicted']][:8]}", fontsize=7, va="center",
                family="monospace", color="black" if row["correct"] else "red")
        x = 0.14
        for token, value in zip(tokens, values):
            color = cmap(0.5 + 0.4 * value / scale)
            ax.text(x, r + 0.5, token, fontsize=8, va="center", family="monospace",
                    bbox={"facecolor": color, "edgecolor": "none", "pad": 1.0})
            x += 0.0105 * len(token) + 0.012
            if x > 0.98:
                break
    return to_figure(fig, title="Token attributions", caption=(
        f"{method.replace('_', ' ').capitalize()} per token for explained examples (first column: ok or WRONG, "
        "and the predicted class). Red tokens push towards the explained class, blue ones against it; the "
        "shade is scaled per example. Long texts are cut after 24 tokens."))
