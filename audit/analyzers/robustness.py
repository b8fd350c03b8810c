"""Robustness: adversarial attacks, natural corruptions, attack sanity and robustness by group.

Images and tables: FGSM and PGD over an epsilon sweep in the model's input space (see
`audit.robustness.domain` for the units and bounds), the smallest epsilon that flips each
correctly classified example, a gradient-free search as a check on the gradient, and
corruptions. Text: word-substitution and typo attacks, and typos as a corruption.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from audit.analyzers.base import Analyzer, MetricSpec, Result, register_analyzer
from audit.errors import AuditInputError
from audit.report.plots import new_figure, to_figure
from audit.robustness.attacks import NORMS, PGD, fgsm, flip_epsilons, pgd
from audit.robustness.corruptions import corrupted_images, corrupted_tables, corrupted_texts
from audit.robustness.domain import Domain, input_domain
from audit.robustness.groups import group_table, largest_gap
from audit.robustness.sanity import sanity_checks
from audit.robustness.search import square_search
from audit.robustness.text_attacks import TextAttackOutcome, typo_attack, word_substitution

DEFAULT_SAMPLES = {"image": 256, "tabular": 256, "text": 32}
IMAGE_EPSILON = 0.1  # L-inf, as a share of the encoder's range
TABLE_EPSILON = 0.2  # L-inf, in standard deviations
TABLE_LARGE_EPSILON = 10.0  # standard deviations, with the data-range bounds lifted


@register_analyzer
@dataclass(frozen=True, kw_only=True)
class Robustness(Analyzer):
    """How far inputs must move to flip the model, how it bears natural corruptions, and
    whether the attacks themselves can be trusted.

    `epsilon` (None: 0.1 of the image range or 0.2 standard deviations of a table column,
    L-inf; under L2 that times sqrt(movable features) / 4) is where the gateable metrics
    are taken; `sweep` lists the epsilons of the curve as multiples of it. `samples`
    examples are drawn (seeded) from the data (None: 256, or 32 texts).
    """

    samples: int | None = None
    epsilon: float | None = None
    norm: str = "linf"
    sweep: tuple[float, ...] = (0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 5.0)
    steps: int = 20
    step_size: float | None = None
    restarts: int = 1
    random_start: bool = True
    flip_refine: int = 4
    search_iterations: int = 100
    large_epsilon: float | None = None
    sanity_tolerance: float = 0.03
    large_max_accuracy: float = 0.1
    min_group_size: int = 10
    examples: int = 4
    neighbours: int = 8
    max_words_fraction: float = 0.25

    name = "robustness"
    title = "Robustness"
    description = "adversarial attacks (FGSM, PGD, word substitution, typos), corruptions, attack sanity, by group"
    metric_prefix = "robustness"
    metrics = {
        "robustness.clean_accuracy": MetricSpec("accuracy on the attacked sample before any attack", "higher"),
        "robustness.fgsm_accuracy": MetricSpec("accuracy under FGSM at the configured epsilon", "higher"),
        "robustness.pgd_accuracy": MetricSpec("accuracy under PGD at the configured epsilon", "higher"),
        "robustness.pgd_accuracy_ratio": MetricSpec("PGD accuracy over clean accuracy", "higher"),
        "robustness.median_flip_epsilon": MetricSpec(
            "median smallest epsilon at which PGD flips a correctly classified example", "higher"),
        "robustness.corruption_accuracy": MetricSpec("mean accuracy over corruptions and severities", "higher"),
        "robustness.group_gap": MetricSpec(
            "largest difference in robust accuracy between two groups of a sensitive attribute", "lower"),
        "robustness.sanity_passed": MetricSpec("1 when every attack sanity check passed, else 0", "higher"),
        "robustness.text_attack_success_rate": MetricSpec(
            "share of correctly classified texts that word substitution flips", "lower"),
        "robustness.typo_attack_success_rate": MetricSpec(
            "share of correctly classified texts that character typos flip", "lower"),
        "robustness.text_words_changed": MetricSpec("mean words changed per successful word substitution", "higher"),
    }

    def __post_init__(self):
        if self.norm not in NORMS:
            raise AuditInputError(f"robustness: unknown norm {self.norm!r}; expected one of {', '.join(NORMS)}")
        if self.epsilon is not None and self.epsilon <= 0:
            raise AuditInputError(f"robustness: epsilon must be positive, found {self.epsilon}")
        if not self.sweep or min(self.sweep) <= 0:
            raise AuditInputError("robustness: sweep needs positive multiples of epsilon")
        if not 0 < self.max_words_fraction <= 1:
            raise AuditInputError(f"robustness: max_words_fraction must be in (0, 1], found {self.max_words_fraction}")
        if self.steps < 1 or self.restarts < 1:
            raise AuditInputError(f"robustness: steps and restarts must be at least 1, found {self.steps}, "
                                  f"{self.restarts}")

    def supports(self, model, data) -> bool:
        if model.modality == "text":
            return model.embedding is not None
        return model.modality == "image" or bool(model.encoder.continuous_mask(data).any())

    def run(self, model, data, *, seed: int = 0) -> Result:
        sample = data.sample(self.samples or DEFAULT_SAMPLES[model.modality], seed=seed)
        if model.modality == "text":
            return self._run_text(model, sample, seed)
        return self._run_continuous(model, data, sample, seed)

    # -- images and tables ---------------------------------------------------------------

    def _run_continuous(self, model, data, sample, seed: int) -> Result:
        domain = input_domain(model, data, model.encode(data))
        eps = self.epsilon or default_epsilon(model.modality, self.norm, domain)
        grid = np.unique(np.concatenate([np.asarray(self.sweep) * eps, [eps]]))
        at = int(np.searchsorted(grid, eps))
        attack = PGD(norm=self.norm, steps=self.steps, step_size=self.step_size, restarts=self.restarts,
                     random_start=self.random_start)
        x, y = model.encode(sample), torch.from_numpy(model.labels(sample))
        correct = _correct(model, x, y)
        fgsm_correct, pgd_correct, pgd_at = _sweep(model, x, y, correct, grid, at, domain, attack, seed)

        flip = np.full(len(y), np.nan)
        flip[correct] = flip_epsilons(model, x[correct], y[correct], grid, pgd_correct[correct], domain,
                                      config=attack, refine=self.flip_refine, seed=seed + len(grid))
        median_flip = float(np.median(flip[correct])) if correct.any() else float("nan")
        warnings = []
        if math.isinf(median_flip):
            median_flip = float(grid[-1])
            warnings.append(f"PGD flips fewer than half of the correct examples within the sweep; the median "
                            f"flip epsilon is above {grid[-1]:.3g} (reported as that)")

        large = self.large_epsilon or default_large_epsilon(model.modality, self.norm, domain)
        large_domain = domain if model.modality == "image" else domain.without_bounds()
        large_correct = correct & _correct(model, pgd(model, x, y, large, large_domain, config=attack,
                                                      seed=seed + len(grid) + 1), y)
        search_correct = correct & _correct(model, square_search(
            model, x, y, eps, domain, norm=self.norm, iterations=self.search_iterations, seed=seed), y)
        checks = sanity_checks(fgsm=fgsm_correct[:, at].mean(), pgd=pgd_correct[:, at].mean(),
                               search=search_correct.mean(), large=large_correct.mean(), large_epsilon=large,
                               tolerance=self.sanity_tolerance, large_max_accuracy=self.large_max_accuracy)
        warnings += [f"attack sanity check failed ({c.name}): {c.detail}; the robustness shown may be false "
                     "(masked gradients)" for c in checks if not c.passed]

        corruptions = _corruption_table(model, x, y, domain, seed)
        curve = pd.DataFrame({"epsilon": np.concatenate([[0.0], grid]),
                              "fgsm_accuracy": np.concatenate([[correct.mean()], fgsm_correct.mean(0)]),
                              "pgd_accuracy": np.concatenate([[correct.mean()], pgd_correct.mean(0)])})
        clean = float(correct.mean())
        metrics = {
            "robustness.clean_accuracy": clean,
            "robustness.fgsm_accuracy": float(fgsm_correct[:, at].mean()),
            "robustness.pgd_accuracy": float(pgd_correct[:, at].mean()),
            "robustness.pgd_accuracy_ratio": float(pgd_correct[:, at].mean() / clean) if clean else 0.0,
            "robustness.median_flip_epsilon": median_flip,
            "robustness.corruption_accuracy": float(corruptions["accuracy"].mean()),
            "robustness.sanity_passed": float(all(c.passed for c in checks)),
        }
        tables = {
            "accuracy_by_epsilon": curve,
            "corruptions": corruptions,
            "sanity_checks": pd.DataFrame([c.__dict__ for c in checks]),
        }
        if len(sample.sensitive.columns):
            groups = group_table(sample.sensitive, pgd_correct[:, at], flip).rename(
                columns={"median_flip": "median_flip_epsilon"})
            gap, gap_attribute = largest_gap(groups, min_size=self.min_group_size)
            if gap_attribute is None:
                warnings.append(f"no sensitive attribute has two groups of {self.min_group_size}+ attacked examples; "
                                "robustness.group_gap is not reported")
            else:
                metrics["robustness.group_gap"] = gap
            tables["by_group"] = groups
        shown = np.flatnonzero(correct & ~pgd_correct[:, at])[: self.examples]
        adv_pred = model.logits(pgd_at[shown]).argmax(1).numpy() if len(shown) else np.array([], dtype=int)
        figures = [_curve_figure(curve, eps, search_correct.mean(), self.norm, model.modality)]
        if model.modality == "image":
            figures.append(_image_examples_figure(model, x[shown], pgd_at[shown], y[shown].numpy(), adv_pred,
                                                  domain))
        elif len(shown):
            tables["examples"] = _table_examples(model, sample, x[shown], pgd_at[shown], shown, adv_pred)
            figures.append(_table_examples_figure(tables["examples"]))
        figures.append(_corruption_figure(corruptions))
        details = {
            "epsilon": eps, "norm": self.norm, "large_epsilon": large, "examples_attacked": len(y),
            "search_accuracy": float(search_correct.mean()), "pgd": dataclasses.asdict(attack),
            "units": f"pixel values (valid range [{model.encoder.low:g}, {model.encoder.high:g}])"
                     if model.modality == "image" else
                     "standard deviations of each continuous column (one-hot and 0/1 columns are never perturbed)",
            "bounds": "encoder range [low, high]" if model.modality == "image" else
                      "per-column min/max of the training data and the audited data, in the model's input space",
        }
        if "robustness.group_gap" in metrics:
            details["group_gap_attribute"] = gap_attribute
        return Result(analyzer=self.name, metrics=metrics, tables=tables, figures=tuple(figures),
                      arrays={"flip_epsilon": flip, "pgd_correct": pgd_correct, "epsilons": grid},
                      config=self.config(), details=details, warnings=tuple(warnings))

    # -- text ---------------------------------------------------------------------------

    def _run_text(self, model, sample, seed: int) -> Result:
        texts, labels = sample.texts, model.labels(sample)
        correct = model.predict_proba(sample).argmax(1) == labels
        chosen = [t for t, ok in zip(texts, correct) if ok]
        words = word_substitution(model, chosen, labels[correct], neighbours=self.neighbours,
                                  max_fraction=self.max_words_fraction)
        typos = typo_attack(model, chosen, labels[correct], max_fraction=self.max_words_fraction)
        corruptions = pd.DataFrame([
            {"corruption": name, "severity": severity, "level": level,
             "accuracy": float((model.predict_proba(noisy).argmax(1) == labels).mean())}
            for name, severity, level, noisy in corrupted_texts(texts, seed=seed)])
        success = words.flipped.mean() if len(chosen) else float("nan")
        typo_success = typos.flipped.mean() if len(chosen) else float("nan")
        changed = words.words_changed[words.flipped]
        metrics = {
            "robustness.clean_accuracy": float(correct.mean()),
            "robustness.text_attack_success_rate": float(success),
            "robustness.typo_attack_success_rate": float(typo_success),
            "robustness.text_words_changed": float(changed.mean()) if len(changed) else float("nan"),
            "robustness.corruption_accuracy": float(corruptions["accuracy"].mean()),
        }
        summary = pd.DataFrame([
            {"attack": "word substitution", "success_rate": success,
             "words_changed_per_success": metrics["robustness.text_words_changed"]},
            {"attack": "character typos", "success_rate": typo_success,
             "words_changed_per_success": float(typos.words_changed[typos.flipped].mean())
             if typos.flipped.any() else float("nan")},
        ])
        tables = {"attacks": summary, "corruptions": corruptions,
                  "examples": _text_examples(model, chosen, labels[correct], words, typos, self.examples)}
        if len(sample.sensitive.columns):
            robust = correct.copy()
            robust[correct] = ~words.flipped
            flip = np.full(len(labels), np.nan)
            flip[correct] = np.where(words.flipped, words.words_changed, np.inf)
            groups = group_table(sample.sensitive, robust, flip).rename(columns={"median_flip": "median_words_changed"})
            gap, gap_attribute = largest_gap(groups, min_size=self.min_group_size)
            if gap_attribute is not None:
                metrics["robustness.group_gap"] = gap
            tables["by_group"] = groups
        warnings = () if len(chosen) else ("no sampled text is classified correctly; the attacks had nothing to flip",)
        return Result(analyzer=self.name, metrics=metrics, tables=tables, figures=(_text_figure(metrics),),
                      config=self.config(), warnings=warnings,
                      details={"texts_attacked": len(chosen),
                               "candidates": "nearest neighbours in the model's own token embedding (cosine)"})


def default_epsilon(modality: str, norm: str, domain: Domain) -> float:
    linf = IMAGE_EPSILON * float((domain.high - domain.low).mean()) if modality == "image" else TABLE_EPSILON
    return linf if norm == "linf" else linf * math.sqrt(domain.movable) / 4


def default_large_epsilon(modality: str, norm: str, domain: Domain) -> float:
    """Large enough to reach any valid image, or 10 standard deviations of a table column."""
    linf = float((domain.high - domain.low).max()) if modality == "image" else TABLE_LARGE_EPSILON
    return linf if norm == "linf" else linf * math.sqrt(domain.movable)


def _sweep(model, x, y, correct, grid, at: int, domain: Domain, attack: PGD, seed: int):
    """Per example and grid epsilon, whether it stays correct under FGSM and under PGD; and
    PGD's adversarial inputs at grid[at]."""
    fgsm_correct, pgd_correct, pgd_at = [], [], None
    for k, e in enumerate(grid):
        fgsm_correct.append(correct & _correct(model, fgsm(model, x, y, e, domain, norm=attack.norm), y))
        adv = pgd(model, x, y, e, domain, config=attack, seed=seed + k)
        pgd_correct.append(correct & _correct(model, adv, y))
        pgd_at = adv if k == at else pgd_at
    return np.stack(fgsm_correct, 1), np.stack(pgd_correct, 1), pgd_at


def _correct(model, x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    return (model.logits(x).argmax(1) == y).numpy()


def _corruption_table(model, x, y, domain: Domain, seed: int) -> pd.DataFrame:
    corrupt = corrupted_images if model.modality == "image" else corrupted_tables
    return pd.DataFrame([
        {"corruption": name, "severity": severity, "level": level, "accuracy": float(_correct(model, noisy, y).mean())}
        for name, severity, level, noisy in corrupt(x, domain, seed=seed)])


def _table_examples(model, sample, x, adv, shown, adv_pred) -> pd.DataFrame:
    """The (at most) five most perturbed features of each example, in the data's own units."""
    names = model.feature_names(sample)
    raw_x, raw_adv = _data_units(model, x), _data_units(model, adv)
    labels = model.labels(sample)
    rows = []
    for j, i in enumerate(shown):
        change = (adv[j] - x[j]).numpy()
        order = [f for f in np.argsort(-np.abs(change), kind="stable")[:5] if change[f] != 0]
        for f in order:
            rows.append({"example": int(i), "feature": names[f], "original": round(float(raw_x[j, f]), 6) + 0.0,
                         "adversarial": round(float(raw_adv[j, f]), 6) + 0.0, "change_model_units": float(change[f]),
                         "prediction": model.classes[int(labels[i])],
                         "adversarial_prediction": model.classes[int(adv_pred[j])]})
    return pd.DataFrame(rows)


def _data_units(model, x: torch.Tensor) -> np.ndarray:
    """Model-space table rows with the standardized columns mapped back to the data's units."""
    values = x.numpy().astype(np.float64).copy()
    encoder = model.encoder
    if not encoder.passthrough and encoder.numeric:
        k = len(encoder.numeric)
        values[:, :k] = values[:, :k] * np.asarray(encoder.stds) + np.asarray(encoder.means)
    return values


def _text_examples(model, texts, labels, words: TextAttackOutcome, typos: TextAttackOutcome, n: int) -> pd.DataFrame:
    rows = []
    for attack, outcome in (("word substitution", words), ("character typos", typos)):
        for i in np.flatnonzero(outcome.flipped)[:n]:
            rows.append({"attack": attack, "original": texts[i], "adversarial (changes marked)": outcome.marked[i],
                         "words_changed": len(outcome.changes[i]), "prediction": model.classes[int(labels[i])],
                         "adversarial_prediction": model.classes[int(model.predict([outcome.texts[i]])[0])]})
    return pd.DataFrame(rows, columns=["attack", "original", "adversarial (changes marked)", "words_changed",
                                       "prediction", "adversarial_prediction"])


# -- figures ------------------------------------------------------------------------------

def _curve_figure(curve: pd.DataFrame, eps: float, search: float, norm: str, modality: str):
    fig, ax = new_figure(5.0, 3.4)
    ax.plot(curve["epsilon"], curve["fgsm_accuracy"], marker="o", label="FGSM", color="#f58518")
    ax.plot(curve["epsilon"], curve["pgd_accuracy"], marker="o", label="PGD", color="#4c78a8")
    ax.scatter([eps], [search], marker="x", color="#54a24b", zorder=3, label="gradient-free search")
    ax.axvline(eps, linestyle="--", color="#888", linewidth=1)
    ax.set_ylim(-0.02, 1.02)
    units = "pixel values" if modality == "image" else "standard deviations"
    ax.set_xlabel(f"epsilon ({'L-inf' if norm == 'linf' else 'L2'}, {units})")
    ax.set_ylabel("robust accuracy")
    ax.legend(fontsize=8)
    return to_figure(fig, title="Robust accuracy by epsilon", caption=(
        "Accuracy on the attacked sample when every input may move by up to epsilon (epsilon 0 is the clean "
        "accuracy). The dashed line marks the configured epsilon, where the gateable metrics are taken. A curve "
        "that falls fast means small nudges flip the model. PGD should lie at or below FGSM, and the green cross "
        "(a gradient-free attack) at or above PGD; otherwise the gradient is masked and the curve flatters."))


def _image_examples_figure(model, x, adv, y, adv_pred, domain: Domain):
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
        "Each row is a correctly classified image (left, labelled with its true class), the PGD perturbation at "
        "the configured epsilon (middle, averaged over channels; red raises, blue lowers a pixel) and the "
        "adversarial image (right, labelled with the class the model now predicts)."))


def _stack(tiles: list[np.ndarray]) -> np.ndarray:
    """Tiles one above the other, with a blank row between them."""
    if not tiles:
        return np.full((1, 1), np.nan)
    gap = np.full((1,) + tiles[0].shape[1:], np.nan)
    return np.concatenate([part for tile in tiles for part in (tile, gap)][:-1])


def _table_examples_figure(examples: pd.DataFrame):
    groups = list(examples.groupby("example", sort=False))
    fig, axes = new_figure(5.4, 1.5 * len(groups) + 0.4, nrows=len(groups), ncols=1, squeeze=False)
    for ax, (example, rows) in zip(axes[:, 0], groups):
        change = rows["change_model_units"].to_numpy()
        labels = [f"{f}: {a:.4g} -> {b:.4g}" for f, a, b in zip(rows["feature"], rows["original"], rows["adversarial"])]
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
        "original and adversarial values in the data's units). One-hot columns are never moved."))


def _display(image: torch.Tensor) -> np.ndarray:
    return image.permute(1, 2, 0).numpy() if image.shape[0] == 3 else image[0].numpy()


def _corruption_figure(corruptions: pd.DataFrame):
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


def _text_figure(metrics: dict):
    fig, ax = new_figure(4.6, 3.0)
    clean = metrics["robustness.clean_accuracy"]
    bars = {
        "clean": clean,
        "word substitution": clean * (1 - np.nan_to_num(metrics["robustness.text_attack_success_rate"])),
        "character typos": clean * (1 - np.nan_to_num(metrics["robustness.typo_attack_success_rate"])),
        "random typos (mean)": metrics["robustness.corruption_accuracy"],
    }
    ax.barh(list(bars), list(bars.values()), color=["#4c78a8", "#e45756", "#f58518", "#72b7b2"])
    ax.set_xlim(0, 1)
    ax.invert_yaxis()
    ax.set_xlabel("accuracy")
    return to_figure(fig, title="Accuracy under text attacks", caption=(
        "Accuracy on the sampled texts before any attack, after the greedy word-substitution and typo attacks "
        "(which change at most the configured share of words), and with random typos (mean over severities). "
        "A short red or orange bar means a few changed words flip the model."))
