"""Figures of attributions: importance bars, heatmaps beside images, coloured tokens, and the
per-example views of signed attributions (SHAP values, LIME weights). Per-example panels (image
grids, token panels, per-example bars) are gallery figures: a report shows them folded."""

from __future__ import annotations

import textwrap

import numpy as np
import pandas as pd

from audit.core.result import Figure
from audit.methods.attributions.summary import feature_groups, group_sums
from audit.plots import new_figure, to_figure, wrapped

TOP_FEATURES = 15
EXAMPLES = 4
TOKEN_LINES = 3  # lines of tokens shown per text
TILE = 0.95  # inches per image in a grid


def importance_figure(table: pd.DataFrame, *, xlabel: str, title: str, caption: str) -> Figure:
    """Bars for the first TOP_FEATURES rows of `table` (features, most important first), one bar
    per column (several columns, e.g. methods, are named in a legend)."""
    top = table.head(TOP_FEATURES)
    series = list(top.columns)
    fig, ax = new_figure(6.0, 1.2 + 0.3 * len(top))
    height = 0.8 / len(series)
    positions = np.arange(len(top))
    for i, name in enumerate(series):
        ax.barh(positions + i * height, top[name].fillna(0.0).to_numpy(), height=height, label=name)
    ax.set_yticks(positions + 0.4 - height / 2, [textwrap.shorten(str(f), 32) for f in top.index])
    ax.invert_yaxis()
    ax.set_xlabel(xlabel)
    if len(series) > 1:
        ax.legend(fontsize=7, loc="lower right")
    return to_figure(fig, title=title, caption=caption)


def mean_map_figure(maps: dict[str, np.ndarray], *, title: str, caption: str) -> Figure:
    """One heatmap per method (name -> (H, W) share of |attribution| per pixel), side by side on one
    colour scale: where on the image the model looks, over all explained examples. Two to a row, so
    that a phone shows them at 3/4 of their size."""
    ncols = min(len(maps), 2)
    nrows = -(-len(maps) // ncols)
    fig, axes = new_figure(1.9 * ncols + 0.9, 2.3 * nrows + 0.1, nrows=nrows, ncols=ncols, squeeze=False)
    for ax in axes.ravel()[len(maps):]:
        ax.set_axis_off()
    top = max(float(m.max()) for m in maps.values()) or 1.0
    for ax, (name, shares) in zip(axes.ravel(), maps.items()):
        shown = ax.imshow(shares, cmap="inferno", vmin=0, vmax=top)
        ax.set_title(name.replace("_", " "), fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    bar = fig.colorbar(shown, cax=axes[0, -1].inset_axes([1.06, 0.0, 0.07, 1.0]))
    bar.set_label("share of |attribution|", fontsize=8)
    return to_figure(fig, title=title, caption=caption)


def image_grid(images: np.ndarray, maps: dict[str, np.ndarray], labels: list[str], *, signed: bool,
               title: str, caption: str, label_colors: list[str] | None = None) -> Figure:
    """One row per image (N, C, H, W): the image titled by its label, then each map of `maps`
    (name -> attributions shaped like `images`) summed over channels, scaled per map. Signed maps
    are red (positive) and blue (negative); unsigned ones are |attribution| over the image."""
    rows, cols = len(images), 1 + len(maps)
    # Small tiles, large type: five columns shrink to 0.7 of their size on a 390 px screen, not to 0.5;
    # two are drawn 340 px wide, the least a report shows a figure at, so they are not blown up.
    fig, axes = new_figure(max(TILE * cols + 0.3, 3.4), (TILE + 0.35) * rows + 0.5, nrows=rows, ncols=cols,
                           squeeze=False)
    for r, image in enumerate(images):
        gray = image.mean(axis=0)
        axes[r, 0].imshow(image.transpose(1, 2, 0) if image.shape[0] == 3 else gray, cmap="gray")
        axes[r, 0].set_title(wrapped(labels[r], 14), fontsize=9, color=label_colors[r] if label_colors else "black")
        for c, (name, values) in enumerate(maps.items(), start=1):
            if signed:
                heat = values[r].sum(axis=0)
                limit = float(np.abs(heat).max()) or 1.0
                axes[r, c].imshow(heat, cmap="bwr", vmin=-limit, vmax=limit)
            else:
                heat = np.abs(values[r]).sum(axis=0)
                axes[r, c].imshow(gray, cmap="gray")
                axes[r, c].imshow(heat / max(heat.max(), 1e-12), cmap="inferno", alpha=0.6, vmin=0, vmax=1)
            if r == 0:
                axes[r, c].set_title(wrapped(name.replace("_", " "), 12), fontsize=9)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    return to_figure(fig, title=title, caption=caption, gallery=True)


def token_figure(tokens: list[list[str]], weights: list[np.ndarray], labels: list[str], *, title: str,
                 caption: str, label_colors: list[str] | None = None) -> Figure:
    """One panel per text: its label, then its tokens on backgrounds coloured by their signed
    weight (red positive, blue negative, scaled per text), wrapped over up to TOKEN_LINES lines."""
    fig, axes = new_figure(7.5, 1.1 * len(tokens) + 0.4, nrows=len(tokens), squeeze=False)
    for i, (ax, words, values) in enumerate(zip(axes[:, 0], tokens, weights)):
        _colored_tokens(ax, words, values, labels[i], label_colors[i] if label_colors else "#555")
    return to_figure(fig, title=title, caption=caption, gallery=True)


def _colored_tokens(ax, tokens: list[str], weights: np.ndarray, label: str, label_color: str,
                    width: int = 100) -> None:
    """Tokens in a monospace font; `width` is in characters (an 8-point monospace character is
    about 1/15 inch)."""
    from matplotlib import cm

    limit = float(np.abs(weights).max()) if len(weights) else 1.0
    limit = limit or 1.0
    ax.set_axis_off()
    ax.set_xlim(0, width)
    ax.set_ylim(-TOKEN_LINES - 0.5, 1)
    ax.text(0, 0.5, label, fontsize=7, color=label_color)
    column, line = 0, 0
    for token, weight in zip(tokens, weights):
        if column + len(token) > width:
            column, line = 0, line + 1
        if line >= TOKEN_LINES:
            break
        color = cm.bwr(0.5 + 0.4 * weight / limit)  # the darkest shades would hide the text
        ax.text(column, -line - 0.5, token, family="monospace", fontsize=8,
                bbox={"facecolor": color, "edgecolor": "none", "pad": 1})
        column += len(token) + 1


def examples_figure(values: np.ndarray, model, data, target: np.ndarray, *, title: str, caption: str) -> Figure:
    """Signed attributions of the first EXAMPLES examples: heatmaps beside the images, coloured
    tokens, or the largest contributions per raw column."""
    n = min(EXAMPLES, len(values))
    labels = [f"explained: {model.classes[c]}" for c in target[:n]]
    if model.modality == "image":
        return image_grid(data.inputs[:n], {"attribution": values[:n]}, labels, signed=True, title=title,
                          caption=caption)
    if model.modality == "text":
        tokens = [model.encoder.tokens(text) for text in data.texts[:n]]
        return token_figure(tokens, [v[: len(t)] for v, t in zip(values, tokens)], labels, title=title,
                            caption=caption)
    names, groups = feature_groups(model, data)
    # Stacked, not side by side: each panel keeps a legible width on a narrow screen.
    fig, axes = new_figure(5.4, 2.6 * n + 0.3, nrows=n, squeeze=False)
    for i in range(n):
        contributions = group_sums(values[i], groups)
        order = np.argsort(-np.abs(contributions))[:8][::-1]
        axes[i, 0].barh([textwrap.fill(names[j], 28, max_lines=2, placeholder="…") for j in order],
                        contributions[order], color=["#d62728" if contributions[j] > 0 else "#1f77b4" for j in order])
        axes[i, 0].axvline(0, color="#444", linewidth=0.8)
        axes[i, 0].set_title(f"example {i + 1}, {labels[i]}", fontsize=10)
        axes[i, 0].tick_params(labelsize=9)
    return to_figure(fig, title=title, caption=caption, gallery=True)
