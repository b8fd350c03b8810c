"""Performance: accuracy, balanced accuracy, macro F1, per-class scores, confusion, calibration."""

from __future__ import annotations

import textwrap
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score
from sklearn.metrics import precision_recall_fscore_support

from audit.analyzers.performance.duplicates import EXACT_ROWS, DuplicateCount
from audit.core.analyzer import Analyzer, Cost, Probed, UNPROBED, Tally, register_analyzer
from audit.core.result import Finding, MetricSpec, Result
from audit.plots import new_figure, to_figure


DUPLICATE_SHARE = 0.05  # of rows that repeat other rows, from which a finding names them
COPIED_SHARE = 0.5  # from which they are called copies, not chance repeats


def expected_calibration_error(proba: np.ndarray, labels: np.ndarray, bins: int) -> tuple[float, pd.DataFrame]:
    """ECE of the top-class confidence over `bins` equal-width bins, and the per-bin table."""
    return calibration_table(*calibration_sums(proba, labels, bins))


def calibration_sums(proba: np.ndarray, labels: np.ndarray, bins: int) -> np.ndarray:
    """Per equal-width bin of the top-class confidence: rows, summed confidence and correct predictions,
    shape (3, bins); sums over chunks of rows add up."""
    confidence = proba.max(axis=1)
    correct = (proba.argmax(axis=1) == labels).astype(float)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    return np.stack([np.bincount(which, minlength=bins).astype(float),
                     np.bincount(which, weights=confidence, minlength=bins),
                     np.bincount(which, weights=correct, minlength=bins)])


def calibration_table(count: np.ndarray, conf_sum: np.ndarray, acc_sum: np.ndarray) -> tuple[float, pd.DataFrame]:
    bins = len(count)
    edges = np.linspace(0.0, 1.0, bins + 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf, accuracy = conf_sum / count, acc_sum / count
    ece = float(np.nansum(count / count.sum() * np.abs(accuracy - mean_conf)))
    table = pd.DataFrame({
        "bin_low": edges[:-1], "bin_high": edges[1:], "count": count.astype(np.int64),
        "mean_confidence": mean_conf, "accuracy": accuracy,
    })
    return ece, table


@register_analyzer
@dataclass(frozen=True, kw_only=True)
class Performance(Analyzer):
    """How often the model is right, per class, and whether its confidence can be trusted.

    Every number is a function of the confusion matrix and the calibration bins' sums (`PerformanceTally`),
    so a streamed run gives the same numbers as one over the whole data in memory."""

    bins: int = 10

    name = "performance"
    title = "Performance"
    description = "accuracy, per-class precision and recall, confusion matrix, calibration"
    metric_prefix = "performance"
    needs_model = False
    headline = ("performance.balanced_accuracy", "performance.accuracy", "performance.ece")
    metrics = {
        "performance.accuracy": MetricSpec("share of correct predictions", "higher"),
        "performance.balanced_accuracy": MetricSpec("mean recall over classes", "higher"),
        "performance.macro_f1": MetricSpec("unweighted mean F1 over classes", "higher"),
        "performance.ece": MetricSpec(
            "expected calibration error: mean gap between confidence and accuracy", "lower"),
    }

    def run(self, model, data, *, seed: int = 0) -> Result:
        tally = self.tally(model, None, seed=seed)
        tally.add(data, model.predict_proba(data), 0)
        return tally.result(data)

    def cost(self, model, rows: int, *, probed: Probed = UNPROBED) -> Cost:
        return Cost(seconds=0.2)  # the tables and figures: 0.13-0.24 CPU s on the reference models

    def tally(self, model, values, *, seed: int) -> PerformanceTally:
        return PerformanceTally(self, model)

    def findings(self, result, thresholds):
        return _duplicates_finding(result.details)


class PerformanceTally(Tally):
    """The confusion matrix and the calibration bins' sums."""

    def __init__(self, analyzer: Performance, model):
        self.analyzer, self.model = analyzer, model
        k = len(model.classes)
        self.confusion = np.zeros((k, k), dtype=np.int64)
        self.calibration = np.zeros((3, analyzer.bins))
        self.copies = DuplicateCount()

    def add(self, chunk, proba, start):
        labels = self.model.labels(chunk)
        k = len(self.confusion)
        self.confusion += np.bincount(labels * k + proba.argmax(axis=1), minlength=k * k).reshape(k, k)
        self.calibration += calibration_sums(proba, labels, self.analyzer.bins)
        self.copies.add(chunk.inputs, labels)

    def result(self, sample) -> Result:
        classes = list(self.model.classes)
        class_ids = np.arange(len(classes))
        # sklearn's metrics of the rows, read from the confusion matrix: one row per filled cell, weighted by its count
        labels, pred = np.nonzero(self.confusion)
        weight = self.confusion[labels, pred]
        precision, recall, f1, _ = precision_recall_fscore_support(
            labels, pred, labels=class_ids, zero_division=0, sample_weight=weight)
        per_class = pd.DataFrame(
            {"precision": precision, "recall": recall, "f1": f1, "support": self.confusion.sum(axis=1)},
            index=pd.Index(classes, name="class"))
        confusion = pd.DataFrame(self.confusion, index=pd.Index(classes, name="true"),
                                 columns=pd.Index(classes, name="predicted"))
        ece, reliability = calibration_table(*self.calibration)
        present = np.flatnonzero(self.confusion.sum(axis=1))
        with warnings.catch_warnings():  # a slice may hold fewer classes: the result warns about that itself
            warnings.filterwarnings("ignore", message="y_pred contains classes not in y_true")
            warnings.filterwarnings("ignore", message="A single label was found")
            metrics = {
                "performance.accuracy": accuracy_score(labels, pred, sample_weight=weight),
                "performance.balanced_accuracy": balanced_accuracy_score(labels, pred, sample_weight=weight),
                "performance.macro_f1": f1_score(labels, pred, labels=present, average="macro", zero_division=0,
                                                 sample_weight=weight),
                "performance.ece": ece,
            }
        return Result(
            analyzer=self.analyzer.name,
            metrics={k: float(v) for k, v in metrics.items()},
            tables={"per_class": per_class, "confusion_matrix": confusion, "reliability": reliability},
            figures=(_confusion_figure(confusion), _reliability_figure(reliability, ece)),
            config=self.analyzer.config(),
            warnings=_absent_classes(classes, present),
            details={"rows": int(self.confusion.sum()), "duplicate_rows": self.copies.duplicates,
                     "duplicates_exact": self.copies.exact},
            figure_tables=("confusion_matrix", "reliability"),
        )


def _duplicates_finding(details: dict) -> tuple[Finding, ...]:
    """A finding when DUPLICATE_SHARE or more of the rows repeat other rows (inputs and label alike). Tables of
    few distinct values repeat rows by chance (adult's test split: 6%), so a share below COPIED_SHARE is told
    as a question (low), above it as copies (medium)."""
    copies, rows = details.get("duplicate_rows"), details.get("rows", 0)
    if not copies or copies < DUPLICATE_SHARE * rows:
        return ()
    exact = details.get("duplicates_exact", True)
    count = f"{copies:,} of {rows:,} rows" if exact else f"about {copies:,} of {rows:,} rows"
    sampled = "" if exact else f" (counted from a sample of the rows' hashes past {EXACT_ROWS:,} distinct rows)"
    why = ("Every interval of this report counts each row as a separate observation; copies add rows but no "
           "evidence, so intervals shrink and findings look surer than the data allow.")
    if copies >= COPIED_SHARE * rows:
        return (Finding("medium", f"{count} are exact copies of other rows ({copies / rows:.0%}): the intervals "
                                  "treat them as independent and are too narrow; deduplicate before auditing.",
                        why=why, next=f"Drop the duplicated rows (same inputs and label) and audit again{sampled}."),)
    return (Finding("low", f"{count} repeat other rows exactly ({copies / rows:.0%}): if they are copies rather "
                           "than distinct cases, the intervals are too narrow.",
                    why=why,
                    next=f"Check how the data were assembled (joins, oversampling, repeated exports){sampled}; drop "
                         "copies and audit again."),)


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
