"""Explanation quality: are the attributions faithful to the model, and do they depend on it?

For each attribution method, on a seeded choice of examples (misclassified ones included):

- faithfulness: deletion and insertion curves. Features are removed from the input
  (deletion) or added to an empty one (insertion) in order of attribution, and the
  probability of the explained class is tracked; the area under each curve (x from
  0 to 1) is compared with the same curve for a random order. Removing sets a feature
  to the absent input the attributions start from: 0 for tables (the standardized
  mean, or no category) and images, the unknown-word token for text (PAD would end
  the sequence early for models that pack by length). The curves are adaptive (curves.py): points
  are scored where the curve still moves by more than `curve_tolerance`, the rest read off straight
  lines, which keeps each area within `curve_tolerance / 2` of the full curve's where it is monotone.
- sanity (model-parameter randomization test, MPRT: Adebayo et al. 2018, "Sanity Checks for
  Saliency Maps"): the parameter-owning layers of a copy of the model are re-initialized in a
  cascade from the top (output) layer down to the input, in `cascade_stages` steps, and the
  attributions recomputed at each step. At each step the similarity is Spearman's rank
  correlation of the signed attributions (pixels sum their channels) of the trained and the
  randomized model, over the features not already at the absent input, averaged over the
  examples; the score is its median over the steps (the middle of Adebayo's cascading curve:
  1 for a method that never changes, 0 or below for one that follows the weights). The median,
  not the mean: one step may leave every method's maps alike (the readout of a two-class model
  mixes hidden units that all see the same object) or change them all (the first convolution),
  and Guided Backprop ignores the upper layers only. Signed, not |attribution|: Hedstroem et al.
  2023 ("Sanity Checks Revisited", the smooth and efficient MPRT) show that absolute values
  and a top-layers-only randomization keep a sound method's maps similar through the input
  structure and the lower layers; |integrated gradients| is |x| times a gradient, so its
  ranks follow the input under any weights. A score at or above `sanity_threshold` fails:
  the method mostly shows what a model with destroyed weights shows too. The cascade runs from the
  deepest stage up and stops for a method once no stage still to run could change its verdict; its
  score is then the median over the stages that ran (sanity.py states the rule). The copies are attributed with 16
  integration steps and 10 GradientSHAP samples instead of 50 and 25: only their ranks are compared (sanity.py
  gives the measured effect).
- agreement: the rank correlation of |attribution| of each pair of methods over the
  union of their top-k features, averaged over examples and pairs.

The trained model's attributions are the ones saliency computed for the same examples and targets
where it ran before in the same audit (`attribute_all` keeps them per model), not computed again.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from audit.analyzers.explanation_quality.curves import area, curves_of_orders, feature_mask
from audit.analyzers.explanation_quality.findings import explanation_findings
from audit.analyzers.explanation_quality.sanity import (cascade_stages, copy_cost, planned_stages, sanity_check,
                                                        spearman)
from audit.analyzers.explanation_quality.summary import ExplanationSummary, SanityOutcome
from audit.core.analyzer import Analyzer, Cost, Probed, UNPROBED, register_analyzer
from audit.core.model import Model
from audit.core.result import MetricSpec, Result
from audit.methods.attributions.methods import attribute_all, attribution_cost, methods_for
from audit.methods.attributions.sampling import explained_samples
from audit.plots import new_figure, to_figure


@register_analyzer
@dataclass(frozen=True, kw_only=True)
class ExplanationQuality(Analyzer):
    """Deletion/insertion faithfulness, randomization sanity check and agreement of attribution methods."""

    methods: tuple[str, ...] | None = None
    samples: int = 16
    steps: int = 20
    cascade_stages: int = 4
    # Set between the two sides of the sanity zoo (tests/test_sanity_zoo.py, benchmarks/sanity_rates.py):
    # gradients and integrated gradients score at most 0.3 there; the input itself and an edge
    # detector 1, Guided Backprop on CNNs 0.6-0.9 (insensitive to the upper layers: Adebayo et al. 2018).
    sanity_threshold: float = 0.5
    top_k: int = 10
    # Where a curve's scored points differ by less, the points between are read off a straight line (None:
    # every point scored); at 0.02 the reference models' areas moved by at most 0.007 (the bound: 0.01 where monotone).
    curve_tolerance: float | None = 0.02

    name = "explanation_quality"
    concern = "Explanations"
    title = "Explanation quality"
    description = "faithfulness (deletion and insertion curves), model-randomization sanity check and agreement " \
                  "of the attribution methods"
    metric_prefix = "explanations"
    headline = ("explanations.agreement",)
    metrics = {
        "explanations.<method>.deletion_auc": MetricSpec(
            "area under the explained-class probability as the most attributed features are removed first", "lower"),
        "explanations.<method>.insertion_auc": MetricSpec(
            "area under the explained-class probability as the most attributed features are added first", "higher"),
        "explanations.<method>.random_deletion_auc": MetricSpec(
            "deletion area for a random order: the reference the method should stay below", "higher"),
        "explanations.<method>.random_insertion_auc": MetricSpec(
            "insertion area for a random order: the reference the method should stay above", "lower"),
        "explanations.<method>.randomization_correlation": MetricSpec(
            "rank correlation of the signed attributions of the trained model and of copies whose layers are "
            "re-initialized in a cascade from the top (Adebayo et al. 2018), median over the cascade's stages (those "
            "run before the verdict was decided); high means the method ignores the model", "lower"),
        "explanations.<method>.sanity_passed": MetricSpec(
            "1 when the randomization correlation is below the sanity threshold (the method depends on the "
            "model), else 0", "higher"),
        "explanations.agreement": MetricSpec(
            "mean rank correlation of the top-k features between pairs of methods", "higher"),
    }

    def cost(self, model, rows: int, *, probed: Probed = UNPROBED) -> Cost:
        """The methods' attributions on the model and on each copy of the cascade that a clear verdict takes (with the
        copies' fewer steps and samples), and a deletion and an insertion curve per method and for the random order:
        their two shared ends and `steps` - 1 points each (a ceiling: adaptive curves score fewer points)."""
        n = min(self.samples, rows)
        methods = methods_for(model, self.methods)[0]
        stages = planned_stages(len(cascade_stages(model, self.cascade_stages)))
        curves = 2 + (len(methods) + 1) * 2 * (self.steps - 1)
        return Cost(forward=n * (1 + curves), seconds=0.5) + attribution_cost(model, self.methods) * n \
            + copy_cost(model, methods) * (n * stages)

    def findings(self, result, thresholds):
        return tuple(explanation_findings(result.summary, thresholds))

    def run(self, model, data, *, seed: int = 0) -> Result:
        methods, warnings = methods_for(model, self.methods)
        chosen = explained_samples(model, data, self.samples, seed=seed)
        subset = data.subset(chosen)
        target = model.predict_proba(subset).argmax(axis=1)
        attributions, failed = attribute_all(model, subset, methods, target, seed=seed)
        warnings += failed
        x = model.encode(subset)
        words = model.encoder.word_index(subset.texts) if model.modality == "text" else None
        valid = feature_mask(model, x, words)

        random_scores = np.random.default_rng(seed).random(valid.shape)
        orders = {m: order_scores(model, a) for m, a in attributions.items()}
        curves = curves_of_orders(model, x, {"": random_scores, **orders}, valid, target, self.steps, words=words,
                                  tolerance=self.curve_tolerance)
        reference = curves.pop("")  # the random order

        stages = cascade_stages(model, self.cascade_stages)
        check = sanity_check(model, subset, attributions, target, valid & ~at_absent_value(model, x), stages,
                             threshold=self.sanity_threshold, seed=seed, scores=lambda a: order_scores(model, a))
        warnings += check.warnings
        by_stage = check.by_stage
        correlation = check.correlation
        metrics = {}
        for m, (deletion, insertion) in curves.items():
            metrics[f"explanations.{m}.deletion_auc"] = area(deletion)
            metrics[f"explanations.{m}.insertion_auc"] = area(insertion)
            metrics[f"explanations.{m}.random_deletion_auc"] = area(reference[0])
            metrics[f"explanations.{m}.random_insertion_auc"] = area(reference[1])
        for m, rho in correlation.items():
            metrics[f"explanations.{m}.randomization_correlation"] = rho
            metrics[f"explanations.{m}.sanity_passed"] = float(rho < self.sanity_threshold)
        agreement = agreement_matrix(model, attributions, valid, self.top_k)
        if len(attributions) > 1:
            pairs = [agreement.loc[a, b] for a, b in itertools.combinations(attributions, 2)]
            metrics["explanations.agreement"] = float(np.nanmean(pairs))

        tables = {"faithfulness": pd.DataFrame({
            "deletion_auc": [metrics[f"explanations.{m}.deletion_auc"] for m in curves],
            "random_deletion_auc": [area(reference[0])] * len(curves),
            "insertion_auc": [metrics[f"explanations.{m}.insertion_auc"] for m in curves],
            "random_insertion_auc": [area(reference[1])] * len(curves),
        }, index=pd.Index(list(curves), name="method"))}
        if correlation:
            tables["sanity"] = pd.DataFrame({
                **{f"top {len(layers)} layers": [by_stage[m][i] for m in correlation]
                   for i, layers in enumerate(stages)},
                "randomization_correlation": list(correlation.values()),
                "sanity_passed": [rho < self.sanity_threshold for rho in correlation.values()],
            }, index=pd.Index(list(correlation), name="method"))
        if len(attributions) > 1:
            tables["agreement"] = agreement
        arrays = {"samples": chosen, "targets": target, "random_deletion": reference[0].mean(axis=0),
                  "random_insertion": reference[1].mean(axis=0)}
        for m, (deletion, insertion) in curves.items():
            arrays[f"deletion.{m}"] = deletion.mean(axis=0)
            arrays[f"insertion.{m}"] = insertion.mean(axis=0)
        figures = (_curves_figure(curves, reference, self.steps),
                   _sanity_figure(by_stage, stages, self.sanity_threshold)) if curves else ()
        return Result(
            analyzer=self.name,
            metrics={k: float(v) for k, v in metrics.items()},
            tables=tables,
            arrays=arrays,
            figures=figures,
            config=self.config(),
            details={"methods": list(attributions), "samples": len(chosen),
                     "cascade": [[name or type(model.module).__name__ for name in layers] for layers in stages]},
            warnings=tuple(warnings),
            summary=ExplanationSummary(
                samples=len(chosen), sanity_threshold=self.sanity_threshold,
                sanity=tuple(SanityOutcome(m, float(rho), bool(rho < self.sanity_threshold))
                             for m, rho in correlation.items()),
                agreement=metrics.get("explanations.agreement")),
        )


# -- features: the units that are ranked, removed and compared -------------------------------


def at_absent_value(model: Model, x: torch.Tensor) -> np.ndarray:
    """(N, P): features already at the absent input (0 in tables and images). Path methods give them
    zero attribution under any weights, so they are left out of the sanity correlation, which they
    would otherwise push towards 1 for every method that multiplies by the input."""
    if model.modality == "text":
        return np.zeros(tuple(x.shape), dtype=bool)
    if model.modality == "image":
        return (x == 0).all(dim=1).reshape(len(x), -1).numpy()
    return (x == 0).numpy()


def order_scores(model: Model, attributions: np.ndarray) -> np.ndarray:
    """(N, P) signed scores whose descending order is the removal order (pixels sum their channels)."""
    if model.modality == "image":
        return attributions.sum(axis=1).reshape(len(attributions), -1)
    return attributions


def magnitudes(model: Model, attributions: np.ndarray) -> np.ndarray:
    if model.modality == "image":
        return np.abs(attributions).sum(axis=1).reshape(len(attributions), -1)
    return np.abs(attributions)


# -- agreement ------------------------------------------------------------------------------------


def agreement_matrix(model: Model, attributions: dict[str, np.ndarray], valid: np.ndarray, k: int) -> pd.DataFrame:
    """Mean over examples of the rank correlation of |attribution| between two methods, over the
    union of each one's top-k features."""
    names = list(attributions)
    mags = {m: np.where(valid, magnitudes(model, a), -np.inf) for m, a in attributions.items()}
    table = pd.DataFrame(1.0, index=pd.Index(names, name="method"), columns=names)
    for a, b in itertools.combinations(names, 2):
        rhos = []
        for i in range(len(valid)):
            n = min(k, int(valid[i].sum()))
            top = np.union1d(np.argsort(-mags[a][i])[:n], np.argsort(-mags[b][i])[:n])
            if len(top) > 1:
                rhos.append(spearman(mags[a][i][top], mags[b][i][top]))
        table.loc[a, b] = table.loc[b, a] = np.nanmean(rhos) if rhos and not np.all(np.isnan(rhos)) else np.nan
    return table


# -- figures ------------------------------------------------------------------------------------


def _curves_figure(curves: dict, reference: tuple[np.ndarray, np.ndarray], steps: int):
    fig, (left, right) = new_figure(8.0, 3.4, ncols=2)
    xs = np.linspace(0, 1, steps + 1)
    # Methods can give equal curves (integrated gradients and GradientSHAP often do): each gets its own
    # line style and marker, so one never hides another.
    styles = itertools.cycle([("-", "o"), ("--", "s"), (":", "^"), ("-.", "D"), ((0, (5, 1, 1, 1)), "v")])
    for (method, (deletion, insertion)), (line, marker) in zip(curves.items(), styles):
        for ax, curve in ((left, deletion), (right, insertion)):
            ax.plot(xs, curve.mean(axis=0), linestyle=line, marker=marker, markevery=4, markersize=4,
                    label=method.replace("_", " "))
    left.plot(xs, reference[0].mean(axis=0), color="k", linewidth=2.5, alpha=0.35, label="random order")
    right.plot(xs, reference[1].mean(axis=0), color="k", linewidth=2.5, alpha=0.35, label="random order")
    for ax, what in ((left, "removed"), (right, "added")):
        ax.set_xlabel(f"share of features {what}")
        ax.set_ylim(0, 1.02)
    left.set_ylabel("probability of the explained class")
    left.set_title("deletion (lower is better)", fontsize=9)
    right.set_title("insertion (higher is better)", fontsize=9)
    right.legend(fontsize=7, loc="lower right")
    return to_figure(fig, title="Deletion and insertion curves", caption=(
        "Mean probability of the explained class as features are removed from the input (left) or added to "
        "an empty input (right), most attributed first; the thick grey line uses a random order. A faithful method "
        "falls faster than random on the left and rises faster on the right."))


def _sanity_figure(by_stage: dict[str, list[float]], stages: list[list[str]], threshold: float):
    fig, ax = new_figure(5.5, 3.2)
    xs = np.arange(1, len(stages) + 1)
    markers = itertools.cycle(["o", "s", "^", "D", "v"])
    for (method, rhos), marker in zip(by_stage.items(), markers):
        ax.plot(xs, rhos, marker=marker, markersize=4, label=method.replace("_", " "))
    ax.axhline(threshold, color="#888", linestyle="--")
    ax.set_xticks(xs, [f"top {len(layers)}" for layers in stages])
    ax.set_ylim(-1.02, 1.02)
    ax.set_xlabel("layers re-initialized, from the output down")
    ax.set_ylabel("rank correlation with trained")
    ax.legend(fontsize=7, loc="lower left")
    return to_figure(fig, title="Model randomization sanity check", caption=(
        "For each method, how similar its attributions stay as the model's layers are re-initialized from the top "
        "down (cascading randomization, Adebayo et al. 2018; Spearman rank correlation of the signed attributions). "
        f"A method whose median over the cascade is at or above the dashed line ({threshold:g}) barely depends on what "
        "the model learned and fails the check."))
