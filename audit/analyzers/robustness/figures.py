"""Every figure the robustness analyzer draws."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from audit.methods.robustness.domain import Domain
from audit.plots import new_figure, to_figure


def curve_figure(curve: pd.DataFrame, eps: float, norm: str, modality: str):
    fig, ax = new_figure(5.0, 3.4)
    ax.plot(curve["epsilon"], curve["fgsm_accuracy"], marker="o", label="FGSM", color="#f58518")
    ax.plot(curve["epsilon"], curve["pgd_accuracy"], marker="o", label="PGD", color="#4c78a8")
    ax.plot(curve["epsilon"], curve["robust_accuracy"], marker="x",
            label="all attacks (APGD, Square from the dashed line)", color="#54a24b")
    ax.axvline(eps, linestyle="--", color="#888", linewidth=1)
    ax.set_ylim(-0.02, 1.02)
    units = "pixel values" if modality == "image" else "standard deviations"
    ax.set_xlabel(f"epsilon ({'L-inf' if norm == 'linf' else 'L2'}, {units})")
    ax.set_ylabel("robust accuracy")
    ax.legend(fontsize=8)
    return to_figure(fig, title="Robust accuracy by epsilon", caption=(
        "Accuracy on the attacked sample when every input may move by up to epsilon (epsilon 0 is the clean "
        "accuracy). The dashed line marks the configured epsilon, where the gateable metrics are taken. A curve "
        "that falls fast means small nudges flip the model. PGD should lie at or below FGSM. In the green curve an "
        "example counts only if every attack run at that epsilon fails on it: FGSM and PGD below the dashed line, "
        "and from it on also APGD and the gradient-free Square attack. It should lie close to PGD there; a gap "
        "means the gradient is masked and PGD's curve flatters."))


def image_examples_figure(model, x, adv, y, adv_pred, domain: Domain):
    """Three columns of stacked tiles (one axes each: fast to draw): original, perturbation, adversarial."""
    n = max(1, len(x))
    fig, axes = new_figure(5.4, 1.5 * n + 0.6, ncols=3, squeeze=False)
    low, high = float(domain.low.min()), float(domain.high.max())
    delta = (adv - x).mean(1) if len(x) else torch.zeros(1, 1, 1)
    bound = max(float(delta.abs().max()), 1e-12)
    columns = [
        ([_display(t) for t in x], "gray", low, high, "original", [model.classes[int(c)] for c in y]),
        (list(delta.numpy()), "RdBu_r", -bound, bound, f"perturbation (±{bound:.3g})", []),
        ([_display(t) for t in adv], "gray", low, high, "adversarial", [model.classes[int(c)] for c in adv_pred]),
    ]
    for ax, (tiles, cmap, vmin, vmax, title, labels) in zip(axes[0], columns):
        ax.imshow(_stack(tiles), cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
        ax.set_title(title, fontsize=9)
        ax.set_xticks([])
        height = tiles[0].shape[0] if tiles else 1
        ax.set_yticks([i * (height + 1) + (height - 1) / 2 for i in range(len(labels))], labels, fontsize=9)
        ax.tick_params(length=0)
        for side in ax.spines.values():
            side.set_visible(False)
    if not len(x):
        axes[0, 1].text(0.5, 0.5, "PGD flipped no example\nat this epsilon", ha="center", va="center",
                        transform=axes[0, 1].transAxes, fontsize=9)
    return to_figure(fig, title="Adversarial examples", caption=(
        "Each row is a correctly classified image (left, labelled with its true class), the PGD perturbation "
        "within the configured epsilon (the first PGD found along the sweep; middle, averaged over channels; red "
        "raises, blue lowers a pixel) and the "
        "adversarial image (right, labelled with the class the model now predicts)."), gallery=True)


def _stack(tiles: list[np.ndarray]) -> np.ndarray:
    """Tiles one above the other, with a blank row between them."""
    if not tiles:
        return np.full((1, 1), np.nan)
    gap = np.full((1,) + tiles[0].shape[1:], np.nan)
    return np.concatenate([part for tile in tiles for part in (tile, gap)][:-1])


def table_examples_figure(examples: pd.DataFrame):
    groups = list(examples.groupby("example", sort=False))
    fig, axes = new_figure(5.4, 1.5 * len(groups) + 0.4, nrows=len(groups), ncols=1, squeeze=False)
    for ax, (example, rows) in zip(axes[:, 0], groups):
        change = rows["change_model_units"].to_numpy()
        labels = [f"{f}: {a:.4g} -> {b:.4g}"
                  for f, a, b in zip(rows["feature"], rows["original"], rows["adversarial"])]
        ax.barh(labels, change, color=np.where(change > 0, "#e45756", "#4c78a8"))
        ax.axvline(0, color="#888", linewidth=0.8)
        ax.invert_yaxis()
        ax.tick_params(axis="y", labelsize=7)
        ax.set_title(f"example {example}: {rows['prediction'].iloc[0]} -> {rows['adversarial_prediction'].iloc[0]}",
                     fontsize=8)
    axes[-1, 0].set_xlabel("change (standard deviations)")
    return to_figure(fig, title="Adversarial examples", caption=(
        "Each panel is a correctly classified row that PGD flips at the configured epsilon: the prediction before "
        "and after (title), and the features it moved most (bars: the change in standard deviations; labels: the "
        "original and adversarial values in the data's units). One-hot columns are never moved."), gallery=True)


def _display(image: torch.Tensor) -> np.ndarray:
    return image.permute(1, 2, 0).numpy() if image.shape[0] == 3 else image[0].numpy()


def corruption_figure(corruptions: pd.DataFrame):
    fig, ax = new_figure(4.6, 3.2)
    for name, rows in corruptions.groupby("corruption", sort=False):
        ax.plot(rows["severity"], rows["accuracy"], marker="o", label=name.replace("_", " "))
    ax.set_xticks(sorted(corruptions["severity"].unique()))
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("severity")
    ax.set_ylabel("accuracy")
    ax.legend(fontsize=8)
    return to_figure(fig, title="Accuracy under corruptions", caption=(
        "Accuracy on the sample after each natural corruption at three increasing severities (levels in the "
        "corruptions table). A steep fall means the model depends on details that ordinary noise destroys."))


def text_figure(metrics: dict):
    fig, ax = new_figure(4.6, 3.0)
    clean = metrics["robustness.clean_accuracy"]
    bars = {
        "clean": clean,
        "synonym substitution": clean * (1 - np.nan_to_num(metrics["robustness.text_attack_success_rate"])),
        "character typos": clean * (1 - np.nan_to_num(metrics["robustness.typo_attack_success_rate"])),
        "random typos (mean)": metrics["robustness.corruption_accuracy"],
    }
    if "robustness.embedding_neighbour_flip_rate" in metrics:
        bars["embedding-neighbour probe"] = clean * (1 - np.nan_to_num(
            metrics["robustness.embedding_neighbour_flip_rate"]))
    ax.barh(list(bars), list(bars.values()), color=["#4c78a8", "#e45756", "#f58518", "#72b7b2", "#bab0ac"][:len(bars)])
    ax.set_xlim(0, 1)
    ax.invert_yaxis()
    ax.set_xlabel("accuracy")
    return to_figure(fig, title="Accuracy under text attacks", caption=(
        "Accuracy on the sampled texts before any attack, after the greedy attacks that swap words for WordNet "
        "synonyms of the same part of speech or for one-letter typos (each changes at most the configured share "
        "of words), and with random typos (mean over severities). A short red or orange bar means a few changed "
        "words flip the model. The grey bar, where shown, is a probe that swaps words for their neighbours in the "
        "model's own embedding: those need not mean the same, so it shows sensitivity, not robustness."))
