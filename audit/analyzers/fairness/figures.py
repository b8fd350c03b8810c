"""Figures of the fairness section: disparities with intervals, per-group confusions, intersections, counterfactuals."""

from __future__ import annotations

import numpy as np
import pandas as pd

from audit.plots import new_figure, to_figure, wrapped

MAX_GROUPS_DRAWN = 8
PANELS_PER_ROW = 2
DIFFERENCES = ("demographic_parity_difference", "equalized_odds_difference", "equal_opportunity_difference",
               "accuracy_difference")


def disparity_chart(table: pd.DataFrame, confidence: float):
    """Differences per feature (worst class), points with interval bars."""
    table = table[table["metric"].isin(DIFFERENCES)]
    if "class" in table and (table["class"] == "worst").any():
        table = table[table["class"] == "worst"]
    features = list(dict.fromkeys(table["feature"]))
    fig, ax = new_figure(6.4, 1.2 + 0.32 * len(features) * len(DIFFERENCES))
    colors = ("#4c78a8", "#f58518", "#54a24b", "#b279a2")
    for k, (metric, color) in enumerate(zip(DIFFERENCES, colors)):
        rows = table[table["metric"] == metric].set_index("feature").reindex(features)
        y = np.arange(len(features)) * (len(DIFFERENCES) + 1) + k
        err = np.array([rows["value"] - rows["low"], rows["high"] - rows["value"]]).clip(min=0)
        ax.errorbar(rows["value"], y, xerr=err, fmt="o", color=color, capsize=3, markersize=4,
                    label=metric.replace("_", " "))
    ax.set_yticks(np.arange(len(features)) * (len(DIFFERENCES) + 1) + (len(DIFFERENCES) - 1) / 2,
                  [wrapped(f, 24) for f in features])
    ax.invert_yaxis()
    ax.axvline(0, color="#888", linewidth=0.8)
    ax.set_xlabel("difference between groups (0 = parity)")
    ax.legend(fontsize=7, loc="lower right")
    return to_figure(fig, title="Disparities with confidence intervals", caption=(
        f"For each sensitive feature and intersection, the largest gap between its groups in selection rate "
        f"(demographic parity), in true or false positive rate (equalized odds), in true positive rate (equal "
        f"opportunity) and in accuracy. Bars are {confidence:.0%} score intervals (simultaneous over the groups "
        "compared): a bar that stays clear of 0 "
        "is a gap the data support; one that reaches 0 is consistent with parity. Groups below the minimum size "
        "are left out."))


def group_confusions(feature: str, matrices: dict[str, np.ndarray], classes, kept) -> object:
    """One confusion matrix per group of `feature` (`matrices`: group -> counts of true by predicted class; the
    largest groups, in `kept`'s order), shaded by row share."""
    largest = set(sorted(kept, key=lambda g: -matrices[g].sum())[:MAX_GROUPS_DRAWN])
    shown = [g for g in kept if g in largest]  # in the groups' own order, as in the tables
    k = len(classes)
    # Rows of two, not one long row: a row of six shrinks to a quarter of its size on a phone.
    ncols = min(len(shown), PANELS_PER_ROW)
    nrows = -(-len(shown) // ncols)
    fig, axes = new_figure(1.6 + 1.9 * ncols, 0.2 + 2.4 * nrows, nrows=nrows, ncols=ncols, squeeze=False)
    for ax in axes.ravel()[len(shown):]:
        ax.set_axis_off()
    for ax, group in zip(axes.ravel(), shown):
        matrix = matrices[group]
        shares = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
        ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
        if k <= 4:
            for i in range(k):
                for j in range(k):
                    ax.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=7,
                            color="white" if shares[i, j] > 0.6 else "black")
        ax.set_title(wrapped(f"{group} (n={matrix.sum()})", 24), fontsize=8)
        ax.set_xticks(range(k), [wrapped(c, 8) for c in classes] if k <= 4 else [], fontsize=7)
        ax.set_yticks(range(k), [wrapped(c, 8) for c in classes] if k <= 4 else [], fontsize=7)
    for ax in axes[:, 0]:
        ax.set_ylabel("true class", fontsize=8)
    for ax in axes.ravel()[:len(shown)][-ncols:]:
        ax.set_xlabel("predicted class", fontsize=8)
    return to_figure(fig, title=f"Confusion matrices by {feature}", caption=(
        f"One confusion matrix per group of {feature} (up to {MAX_GROUPS_DRAWN} largest groups of at least the "
        "minimum size): rows are true classes, columns predicted classes, numbers count rows and shades are row "
        "shares. Compare the off-diagonal shades across groups: a darker cell in one group is an error the model "
        "makes more often for it."))


def intersection_map(count: pd.DataFrame, selected: pd.DataFrame, positive: str, min_size: int):
    """Selection rate of every pair of groups of two features (`count` rows and `selected` rows predicted
    positive, the first feature's groups down, the second's across), with counts; small cells marked. The
    feature with more groups runs down the rows, so the map stays narrow enough for a phone."""
    title = f"Intersection: {count.index.name} x {count.columns.name}"  # named as the tables name it
    if count.shape[1] > count.shape[0]:
        count, selected = count.T, selected.T
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = selected / count
    first, second = count.index, count.columns
    shown = np.where(count.to_numpy() >= min_size, rate.to_numpy(), np.nan)
    fig, ax = new_figure(min(2.5 + 0.9 * rate.shape[1], 12.0), min(1.6 + 0.45 * rate.shape[0], 8.0))
    image = ax.imshow(shown, cmap="viridis", vmin=0, vmax=1, aspect="auto")
    for i in range(rate.shape[0]):
        for j in range(rate.shape[1]):
            n = int(count.iat[i, j])
            text = f"{rate.iat[i, j]:.2f}\nn={n}" if n >= min_size else (f"n={n}\n(small)" if n else "")
            ax.text(j, i, text, ha="center", va="center", fontsize=7,
                    color="black" if n >= min_size and rate.iat[i, j] > 0.6 else "white" if n >= min_size else "#444")
    ax.set_xticks(range(rate.shape[1]), [wrapped(c, 14) for c in rate.columns], rotation=30, ha="right", fontsize=7)
    ax.set_yticks(range(rate.shape[0]), [wrapped(c, 14) for c in rate.index], fontsize=7)
    ax.set_xlabel(str(second.name))
    ax.set_ylabel(str(first.name))
    fig.colorbar(image, ax=ax, label=wrapped(f"share predicted {positive}", 30))
    return to_figure(fig, title=title, caption=(
        f"Selection rate (share predicted {positive}) for every combination of {first.name} and {second.name}, "
        f"with the number of rows. Cells with fewer than {min_size} rows are left blank and marked small: "
        "their rate is too noisy to compare. Look for cells far from the others in the same row or column."))


def counterfactual_chart(pairs: pd.DataFrame):
    """Flip rate and mean absolute probability change per identity pair."""
    fig, ax = new_figure(6.0, 1.2 + 0.35 * len(pairs))
    y = np.arange(len(pairs))
    spread = [pairs["flip_rate"] - pairs["flip_rate_low"], pairs["flip_rate_high"] - pairs["flip_rate"]]
    ax.barh(y - 0.2, pairs["flip_rate"], height=0.4, xerr=spread, error_kw={"elinewidth": 0.8, "capsize": 2},
            color="#e45756", label="share of flipped predictions")
    ax.barh(y + 0.2, pairs["mean_abs_delta"], height=0.4, color="#4c78a8", label="mean |change in probability|")
    ax.set_yticks(y, [wrapped(p, 36) for p in pairs["pair"]], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlim(0, max(0.05, float(np.nanmax(pairs[["flip_rate_high", "mean_abs_delta"]].to_numpy())) * 1.15))
    ax.legend(fontsize=7, loc="lower right")
    return to_figure(fig, title="Counterfactual identity substitutions", caption=(
        "Each row swaps one kind of identity term (a name of one gender for the other, a gendered word for its "
        "counterpart, a nationality or religion for another) in held-out sentences and in fixed templates, and "
        "shows how often the predicted class flips (red, with its Wilson confidence interval; the number of "
        "probes per row is in the table) and the mean absolute change in the predicted probability (blue). A "
        "model that ignores identity shows bars near 0."))
