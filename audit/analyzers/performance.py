"""Performance: accuracy, balanced accuracy, macro F1, per-class scores, confusion, calibration."""

from __future__ import annotations

import textwrap
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, balanced_accuracy_score, confusion_matrix, f1_score
from sklearn.metrics import precision_recall_fscore_support

from audit.analyzers.base import Analyzer, MetricSpec, Result, register_analyzer
from audit.report.plots import new_figure, to_figure


def expected_calibration_error(proba: np.ndarray, labels: np.ndarray, bins: int) -> tuple[float, pd.DataFrame]:
    """ECE of the top-class confidence over `bins` equal-width bins, and the per-bin table."""
    confidence = proba.max(axis=1)
    correct = (proba.argmax(axis=1) == labels).astype(float)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    count = np.bincount(which, minlength=bins)
    conf_sum = np.bincount(which, weights=confidence, minlength=bins)
    acc_sum = np.bincount(which, weights=correct, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf, accuracy = conf_sum / count, acc_sum / count
    ece = float(np.nansum(count / len(labels) * np.abs(accuracy - mean_conf)))
    table = pd.DataFrame({
        "bin_low": edges[:-1], "bin_high": edges[1:], "count": count,
        "mean_confidence": mean_conf, "accuracy": accuracy,
    })
    return ece, table


@register_analyzer
@dataclass(frozen=True, kw_only=True)
class Performance(Analyzer):
    """How often the model is right, per class, and whether its confidence can be trusted."""

    bins: int = 10

    name = "performance"
    title = "Performance"
    description = "accuracy, per-class precision and recall, confusion matrix, calibration"
    metric_prefix = "performance"
    metrics = {
        "performance.accuracy": MetricSpec("share of correct predictions", "higher"),
        "performance.balanced_accuracy": MetricSpec("mean recall over classes", "higher"),
        "performance.macro_f1": MetricSpec("unweighted mean F1 over classes", "higher"),
        "performance.ece": MetricSpec(
            "expected calibration error: mean gap between confidence and accuracy", "lower"),
    }

    def run(self, model, data, *, seed: int = 0) -> Result:
        proba = model.predict_proba(data)
        labels = model.labels(data)
        pred = proba.argmax(axis=1)
        classes = list(model.classes)
        class_ids = np.arange(len(classes))
        precision, recall, f1, support = precision_recall_fscore_support(
            labels, pred, labels=class_ids, zero_division=0)
        per_class = pd.DataFrame(
            {"precision": precision, "recall": recall, "f1": f1, "support": support},
            index=pd.Index(classes, name="class"))
        confusion = pd.DataFrame(
            confusion_matrix(labels, pred, labels=class_ids),
            index=pd.Index(classes, name="true"), columns=pd.Index(classes, name="predicted"))
        ece, reliability = expected_calibration_error(proba, labels, self.bins)
        present = np.unique(labels)
        with warnings.catch_warnings():  # a slice may hold fewer classes: the result warns about that itself
            warnings.filterwarnings("ignore", message="y_pred contains classes not in y_true")
            warnings.filterwarnings("ignore", message="A single label was found")
            metrics = {
                "performance.accuracy": accuracy_score(labels, pred),
                "performance.balanced_accuracy": balanced_accuracy_score(labels, pred),
                "performance.macro_f1": f1_score(labels, pred, labels=present, average="macro", zero_division=0),
                "performance.ece": ece,
            }
        return Result(
            analyzer=self.name,
            metrics={k: float(v) for k, v in metrics.items()},
            tables={"per_class": per_class, "confusion_matrix": confusion, "reliability": reliability},
            arrays={"proba": proba, "labels": labels},
            figures=(_confusion_figure(confusion), _reliability_figure(reliability, ece)),
            config=self.config(),
            warnings=_absent_classes(classes, present),
            # The figures show these two tables; the HTML report does not repeat them (JSON keeps them).
            details={"rows": len(labels), "tables_shown_as_figures": ["confusion_matrix", "reliability"]},
        )


def _absent_classes(classes: list[str], present: np.ndarray) -> tuple[str, ...]:
    absent = [c for i, c in enumerate(classes) if i not in set(present.tolist())]
    if not absent:
        return ()
    shown = ", ".join(absent[:5]) + (", ..." if len(absent) > 5 else "")
    return (f"the data hold {len(present)} of the model's {len(classes)} classes (none of {shown}): balanced "
            "accuracy and macro F1 average over the classes present"
            + (", so with one class both measure that class alone" if len(present) == 1 else ""),)


def _confusion_figure(confusion: pd.DataFrame):
    n = len(confusion)
    fig, ax = new_figure(min(2.0 + 0.45 * n, 7.0), min(1.8 + 0.45 * n, 6.5))
    values = confusion.to_numpy()
    shares = values / np.maximum(values.sum(axis=1, keepdims=True), 1)
    ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    for i in range(n):
        for j in range(n):
            ax.text(j, i, str(values[i, j]), ha="center", va="center", fontsize=8,
                    color="white" if shares[i, j] > 0.6 else "black")
    ticks = [textwrap.fill(str(c), 12, max_lines=2, placeholder="…") for c in confusion.index]
    ax.set_xticks(range(n), ticks, rotation=45 if n > 4 else 0, ha="right" if n > 4 else "center")
    ax.set_yticks(range(n), ticks)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    return to_figure(fig, title="Confusion matrix", caption=(
        "Rows are true classes, columns predicted classes; each cell counts examples, and its shade is the "
        "share of its row. A strong diagonal means correct predictions; dark cells off it are systematic confusions."))


def _reliability_figure(table: pd.DataFrame, ece: float):
    fig, ax = new_figure(4.2, 3.6)
    filled = table["count"] > 0
    centers = (table["bin_low"] + table["bin_high"]) / 2
    width = float(table["bin_high"].iloc[0] - table["bin_low"].iloc[0])
    ax.bar(centers[filled], table["accuracy"][filled], width=width * 0.9, color="#4c78a8", label="accuracy")
    ax.plot([0, 1], [0, 1], linestyle="--", color="#888", label="perfect calibration")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence (top-class probability)")
    ax.set_ylabel("accuracy")
    ax.legend(loc="upper left", fontsize=8)
    return to_figure(fig, title="Reliability diagram", caption=(
        f"Accuracy of the predictions grouped by the model's confidence (ECE = {ece:.3f}). Bars below the "
        "dashed diagonal mean over-confidence; above it, under-confidence. Empty bins are not drawn."))
