"""The counts the fairness numbers are functions of, added up over chunks of rows, and the result built from them."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from audit._util.errors import AuditInputError
from audit.analyzers.fairness import figures
from audit.analyzers.fairness.groups import group_part
from audit.core.analyzer import Tally
from audit.core.groups import INTERSECTION, SensitiveValues, apply_rules, group_rules, with_intersections
from audit.core.reservoir import Reservoir
from audit.core.result import Result
from audit.methods.fairness.counterfactual import counterfactual_probe
from audit.methods.fairness.metrics import outcome_cells, table_from_cells
from audit.methods.fairness.preview import MITIGATION_TABLE

if TYPE_CHECKING:
    from audit.analyzers.fairness.analyzer import Fairness

PREVIEW_ROWS = 100_000  # rows the threshold preview is fitted and evaluated on: beyond them, a seeded sample


class FairnessTally(Tally):
    """What the fairness numbers are functions of, added up over chunks of rows: per group of every sensitive
    feature and intersection and per positive class, the rows by true and predicted outcome and calibration
    bin, with their scores summed (audit.methods.fairness.metrics.outcome_cells); per group of a single feature its
    confusion matrix over all classes; the rows predicted per class; and, for the threshold preview, a seeded
    sample of PREVIEW_ROWS rows' scores, outcomes and groups (every row below that many). Groups are decided
    once, from every sensitive value of the data (`values`), so a chunk that lacks a group changes nothing."""

    def __init__(self, analyzer: Fairness, model, values: SensitiveValues, seed: int):
        joined = [name for name in values.counts if INTERSECTION in name]
        if joined:
            raise AuditInputError(f"fairness: sensitive column {joined[0]!r} contains {INTERSECTION!r}, which joins "
                                  "the names of intersections; rename the column")
        self.analyzer, self.model, self.seed = analyzer, model, seed
        self.sample_rows = analyzer.samples if model.modality == "text" else 0  # the counterfactual probe's
        self.classes = model.classes
        self.targets = analyzer.targets(self.classes)
        self.rules = group_rules(values, analyzer.bins) if values.counts else {}
        self.single = list(self.rules)
        self.order = min(analyzer.intersections, len(self.single))
        empty = pd.DataFrame({name: pd.Categorical([], categories=rule.groups) for name, rule in self.rules.items()})
        self.groups = {f: list(column.cat.categories)
                       for f, column in with_intersections(empty, self.order, drop_unused=False).items()}
        k = len(self.classes)
        self.cells = {(f, t): outcome_cells(np.empty(0, dtype=int), len(g), [], [], [])
                      for f, g in self.groups.items() for t in self.targets}
        self.correct = {f: np.zeros((2, len(g))) for f, g in self.groups.items()}
        self.confusion = {f: np.zeros((len(self.groups[f]), k, k), dtype=np.int64) for f in self.single}
        self.predicted = np.zeros(k, dtype=np.int64)
        self.preview = Reservoir(PREVIEW_ROWS, seed, take=_take_rows, join=_join_rows)

    def add(self, chunk, proba, start):
        labels, pred = self.model.labels(chunk), proba.argmax(axis=1)
        single = apply_rules(chunk.sensitive, self.rules)
        k = len(self.classes)
        for f, column in with_intersections(single, self.order, drop_unused=False).items():
            codes, n = column.cat.codes.to_numpy(), len(self.groups[f])
            for t in self.targets:
                weight, score = outcome_cells(codes, n, labels == t, pred == t, proba[:, t])
                self.cells[f, t][0][...] += weight
                self.cells[f, t][1][...] += score
            self.correct[f] += [np.bincount(codes, minlength=n),
                                np.bincount(codes, weights=labels == pred, minlength=n)]
            if f in self.confusion:
                self.confusion[f] += np.bincount((codes * k + labels) * k + pred, minlength=n * k * k).reshape(n, k, k)
        self.predicted += np.bincount(pred, minlength=k)
        if self.rules and self.analyzer.mitigation and len(self.targets) == 1:  # the what-if needs groups
            first = self.targets[0]
            outcome = np.column_stack([proba[:, first], labels == first, pred == first])
            self.preview.add((outcome, single), start, len(labels))

    def result(self, sample) -> Result:
        analyzer, parts = self.analyzer, []
        if self.rules:
            parts.append(group_part(analyzer, self))
        if self.model.modality == "text":
            probe = counterfactual_probe(self.model, sample, samples=analyzer.samples, seed=self.seed,
                                         positive=self.targets[0] if len(self.targets) == 1 else None,
                                         confidence=analyzer.confidence)
            if "counterfactual_pairs" in probe["tables"]:
                probe["figures"] = [figures.counterfactual_chart(probe["tables"]["counterfactual_pairs"])]
            parts.append(probe)
        merged = {key: {} for key in ("metrics", "intervals", "tables", "details")}
        figs, warnings = [], []
        for part in parts:
            for key in merged:
                merged[key].update(part[key])
            figs.extend(part["figures"])
            warnings.extend(part["warnings"])
        summary = next((part["summary"] for part in parts if "summary" in part), None)
        drivers, caveat, notes = {}, "", {}
        if summary is not None:
            drivers = {name: d.driver for name, d in summary.worst.items() if name.count(".") == 1}
            caveat = summary.degenerate.words if summary.degenerate else ""
            notes = {MITIGATION_TABLE: summary.preview} if summary.preview else {}
        return Result(analyzer=analyzer.name, metrics=merged["metrics"], intervals=merged["intervals"],
                      tables=merged["tables"], figures=tuple(figs), config=analyzer.config(),
                      details=merged["details"], warnings=tuple(warnings), summary=summary, drivers=drivers,
                      caveat=caveat, notes=notes)

    # -- the counts as tables ---------------------------------------------------------------

    def _rows(self, feature: str) -> np.ndarray:
        return self.correct[feature][0]

    def present_groups(self) -> dict[str, list[str]]:
        """The groups of each feature that hold rows (an intersection need not hold every combination)."""
        return {f: [g for g, n in zip(groups, self._rows(f)) if n > 0] for f, groups in self.groups.items()}

    def sizes(self, feature: str) -> pd.Series:
        rows = pd.Series(self._rows(feature).astype(np.int64), index=self.groups[feature])
        return rows[rows > 0]

    def group_table(self, feature: str, target: int) -> pd.DataFrame:
        weight, score = self.cells[feature, target]
        held = self._rows(feature) > 0
        return table_from_cells(weight[held], score[held], np.asarray(self.groups[feature], dtype=object)[held],
                                feature)

    def accuracy_table(self, feature: str) -> pd.DataFrame:
        """Per group: rows, multiclass accuracy, and the correct and wrong counts as the cells the accuracy rate
        reads (tp + tn correct out of all four)."""
        rows, correct = self.correct[feature]
        table = pd.DataFrame({"count": rows, "accuracy": correct / np.maximum(rows, 1), "tn": 0.0, "fp": 0.0,
                              "fn": rows - correct, "tp": correct}, index=pd.Index(self.groups[feature], name="group"))
        return table[rows > 0]

    def confusions(self, feature: str) -> dict[str, np.ndarray]:
        return {g: m for g, m in zip(self.groups[feature], self.confusion[feature]) if m.sum()}

    def selection(self, feature: str, target: int) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Rows and rows predicted `target`, per pair of groups of the two features crossed in `feature`."""
        first, second = feature.split(INTERSECTION)
        weight = self.cells[feature, target][0]
        shape = (len(self.groups[first]), len(self.groups[second]))
        index = pd.Index(self.groups[first], name=first)
        columns = pd.Index(self.groups[second], name=second)
        return (pd.DataFrame(weight.sum(axis=(1, 2, 3)).reshape(shape), index=index, columns=columns),
                pd.DataFrame(weight[:, :, 1].sum(axis=(1, 2)).reshape(shape), index=index, columns=columns))


def _take_rows(held, at):
    outcome, groups = held
    return outcome[at], groups.iloc[at].reset_index(drop=True)


def _join_rows(parts):
    return np.concatenate([o for o, _ in parts]), pd.concat([g for _, g in parts], ignore_index=True)
