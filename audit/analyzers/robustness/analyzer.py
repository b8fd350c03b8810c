"""Robustness: adversarial attacks, natural corruptions, attack sanity and robustness by group.

Images and tables: FGSM and PGD over an epsilon sweep in the model's input space (see
`audit.methods.robustness.domain` for the units and bounds), then, as AutoAttack runs them, each on
what the attacks before it left: APGD with the cross-entropy and the targeted DLR loss
(`audit.methods.robustness.apgd`) and the gradient-free Square attack. An example counts as robust
only when no attack breaks it. What APGD and Square break beyond PGD is the check on PGD's
gradient at every epsilon. Then the smallest epsilon at which PGD flips each correctly classified
example, and corruptions. A model that is random at inference is attacked with expectation
over transformation and scored by a vote (`audit.methods.robustness.stochastic`). Text: substitution
of WordNet synonyms of the same part of speech (the headline) and typo attacks, typos as a
corruption, and the embedding-neighbour probe, reported apart since its swaps need not keep
the meaning (`audit.methods.robustness.text_attacks`).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from scipy.stats import binomtest

from audit.core.analyzer import Analyzer, register_analyzer

from audit.core.result import MetricSpec, Result
from audit.methods.attributions.sampling import seeded
from audit.io.builtin import load_synonyms
from audit._util.errors import AuditInputError
from audit.analyzers.robustness.findings import robustness_findings
from audit.analyzers.robustness.summary import RobustnessSummary
from audit.plots import new_figure, to_figure
from audit.methods.robustness.apgd import APGD, apgd
from audit.methods.robustness.attacks import NORMS, PGD, fgsm, flip_epsilons, pgd
from audit.methods.robustness.corruptions import corrupted_images, corrupted_tables, corrupted_texts
from audit.methods.robustness.domain import Domain, input_domain
from audit.methods.robustness.groups import group_table, largest_gap
from audit.methods.robustness.sanity import sanity_checks
from audit.methods.robustness.square import P_INIT, square_attack
from audit.methods.robustness.stochastic import is_stochastic, voted_correct
from audit.methods.robustness.text_attacks import TextAttackOutcome, embedding_neighbours, typo_attack, word_substitution

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
    examples are drawn (seeded) from the data (None: 256, or 32 texts). At each epsilon APGD-CE
    and APGD-T (`apgd_targets` most likely wrong classes, 0: none) take `apgd_steps` steps
    (0: no APGD) on what FGSM and PGD left, then Square runs `square_queries` queries on what
    they all left (AutoAttack: 100 APGD steps, 9 targets, 5,000 queries; torchattacks' version
    10 steps; these defaults match torchattacks' within 0.5 points at a fifth of its time on the
    models of benchmarks/robustness.py).
    A random model is attacked
    with `draws` forward passes per gradient and scored by the majority of `draws` passes.
    Text attacks change at most `max_words_fraction` of a text's words; the embedding-neighbour
    probe draws from each word's `neighbours` nearest words in the model's embedding.
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
    square_queries: int = 500
    square_p_init: float = P_INIT
    apgd_steps: int = 20
    apgd_targets: int = 9
    draws: int = 11
    large_epsilon: float | None = None
    sanity_tolerance: float = 0.03
    large_max_accuracy: float = 0.1
    min_group_size: int = 10
    examples: int = 4
    neighbours: int = 8
    max_words_fraction: float = 0.25

    name = "robustness"
    title = "Robustness"
    description = ("adversarial attacks (FGSM, PGD, Square, synonym substitution, typos), corruptions, attack sanity, "
                   "by group")
    metric_prefix = "robustness"
    headline = ("robustness.robust_accuracy", "robustness.text_attack_success_rate",
                "robustness.corruption_accuracy")
    metrics = {
        "robustness.clean_accuracy": MetricSpec("accuracy on the attacked sample before any attack", "higher"),
        "robustness.fgsm_accuracy": MetricSpec("accuracy under FGSM at the configured epsilon", "higher"),
        "robustness.pgd_accuracy": MetricSpec("accuracy under PGD at the configured epsilon", "higher"),
        "robustness.pgd_accuracy_ratio": MetricSpec("PGD accuracy over clean accuracy", "higher"),
        "robustness.robust_accuracy": MetricSpec(
            "accuracy at the configured epsilon when an example counts only if FGSM, PGD, Square and APGD all fail "
            "on it",
            "higher"),
        "robustness.stochastic_model": MetricSpec(
            "1 when repeated forward passes of the same input differ (attacked with EOT, scored by vote), else 0",
            "lower"),
        "robustness.median_flip_epsilon": MetricSpec(
            "median smallest epsilon at which PGD flips a correctly classified example", "higher"),
        "robustness.corruption_accuracy": MetricSpec("mean accuracy over corruptions and severities", "higher"),
        "robustness.group_gap": MetricSpec(
            "largest difference in robust accuracy between two groups of a sensitive attribute", "lower"),
        "robustness.sanity_passed": MetricSpec("1 when every attack sanity check passed, else 0", "higher"),
        "robustness.text_attack_success_rate": MetricSpec(
            "share of correctly classified texts that substituting WordNet synonyms of the same part of speech "
            "flips", "lower"),
        "robustness.embedding_neighbour_flip_rate": MetricSpec(
            "sensitivity probe, not a meaning-preserving attack: share of correctly classified texts flipped by "
            "substituting the words' nearest neighbours in the model's own embedding", "lower"),
        "robustness.typo_attack_success_rate": MetricSpec(
            "share of correctly classified texts that character typos flip", "lower"),
        "robustness.text_words_changed": MetricSpec("mean words changed per successful synonym substitution",
                                                    "higher"),
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
        if self.steps < 1 or self.restarts < 1 or self.draws < 1 or self.square_queries < 1:
            raise AuditInputError(f"robustness: steps, restarts, draws and square_queries must be at least 1, found "
                                  f"{self.steps}, {self.restarts}, {self.draws}, {self.square_queries}")
        if self.apgd_steps < 0 or self.apgd_targets < 0:
            raise AuditInputError(f"robustness: apgd_steps and apgd_targets must be at least 0, found "
                                  f"{self.apgd_steps}, {self.apgd_targets}")
        if not 0 < self.square_p_init <= 1:
            raise AuditInputError(f"robustness: square_p_init must be in (0, 1], found {self.square_p_init}")

    def sample_rows(self, model) -> int:
        return self.samples or DEFAULT_SAMPLES[model.modality]

    def supports(self, model, data) -> bool:
        if model.modality == "text":
            return True
        return model.modality == "image" or bool(model.encoder.continuous_mask(data).any())

    def findings(self, result, thresholds):
        return tuple(robustness_findings(result.summary, thresholds))

    def run(self, model, data, *, seed: int = 0) -> Result:
        sample = data.sample(self.samples or DEFAULT_SAMPLES[model.modality], seed=seed)
        if model.modality == "text":
            return self._run_text(model, sample, seed)
        return self._run_continuous(model, data, sample, seed)

    # -- images and tables ---------------------------------------------------------------

    def _run_continuous(self, model, data, sample, seed: int) -> Result:
        with seeded(seed, model.device):  # a random model's draws are part of the seeded work
            return self._attack_continuous(model, data, sample, seed)

    def _attack_continuous(self, model, data, sample, seed: int) -> Result:
        domain = input_domain(model, data, model.encode(data))
        eps = self.epsilon or default_epsilon(model.modality, self.norm, domain)
        grid = np.unique(np.concatenate([np.asarray(self.sweep) * eps, [eps]]))
        at = int(np.searchsorted(grid, eps))
        x, y = model.encode(sample), torch.from_numpy(model.labels(sample))
        stochastic = is_stochastic(model, x)
        draws = self.draws if stochastic else 1
        attack = PGD(norm=self.norm, steps=self.steps, step_size=self.step_size, restarts=self.restarts,
                     random_start=self.random_start, draws=draws)
        correct = voted_correct(model, x, y, draws)
        sweep = _sweep(model, x, y, correct, grid, at, domain, attack, self, stochastic, seed)

        flip = np.full(len(y), np.nan)
        flip[correct] = flip_epsilons(model, x[correct], y[correct], grid, sweep.pgd[correct], domain,
                                      config=attack, refine=self.flip_refine, seed=seed + len(grid))
        median_flip = float(np.median(flip[correct])) if correct.any() else float("nan")
        warnings = []
        if math.isinf(median_flip):
            median_flip = float(grid[-1])
            warnings.append(f"PGD flips fewer than half of the correct examples within the sweep; the median "
                            f"flip epsilon is above {grid[-1]:.3g} (reported as that)")

        # No random start: the point must be reached by following the gradient, which a
        # random draw over a ball this large would otherwise do alone (Carlini et al., 2019).
        large = self.large_epsilon or default_large_epsilon(model.modality, self.norm, domain)
        large_domain = domain if model.modality == "image" else domain.without_bounds()
        large_attack = dataclasses.replace(attack, random_start=False, restarts=1)
        large_correct = correct & voted_correct(model, pgd(model, x, y, large, large_domain, config=large_attack,
                                                           seed=seed + len(grid) + 1), y, draws)
        checks = sanity_checks(grid=grid, clean=float(correct.mean()), fgsm=sweep.fgsm.mean(0), pgd=sweep.pgd.mean(0),
                               beyond_pgd=(sweep.square_only | sweep.apgd_only).mean(0), large=large_correct.mean(),
                               large_epsilon=large, stochastic=stochastic, draws=draws,
                               tolerance=self.sanity_tolerance, large_max_accuracy=self.large_max_accuracy)
        failed = [c for c in checks if not c.passed]
        warnings += [f"attack sanity check failed ({c.name}{'' if math.isnan(c.epsilon) else f' at {c.epsilon:.3g}'}): "
                     f"{c.detail}; the robustness shown may be false (masked gradients)" for c in failed]

        corruptions = _corruption_table(model, x, y, domain, draws, seed)
        robust = sweep.robust
        curve = pd.DataFrame({"epsilon": np.concatenate([[0.0], grid]),
                              "fgsm_accuracy": np.concatenate([[correct.mean()], sweep.fgsm.mean(0)]),
                              "pgd_accuracy": np.concatenate([[correct.mean()], sweep.pgd.mean(0)]),
                              "square_only_share": np.concatenate([[0.0], sweep.square_only.mean(0)]),
                              "apgd_only_share": np.concatenate([[0.0], sweep.apgd_only.mean(0)]),
                              "robust_accuracy": np.concatenate([[correct.mean()], robust.mean(0)])})
        clean = float(correct.mean())
        metrics = {
            "robustness.clean_accuracy": clean,
            "robustness.fgsm_accuracy": float(sweep.fgsm[:, at].mean()),
            "robustness.pgd_accuracy": float(sweep.pgd[:, at].mean()),
            "robustness.pgd_accuracy_ratio": float(sweep.pgd[:, at].mean() / clean) if clean else 0.0,
            "robustness.robust_accuracy": float(robust[:, at].mean()),
            "robustness.median_flip_epsilon": median_flip,
            "robustness.corruption_accuracy": float(corruptions["accuracy"].mean()),
            "robustness.sanity_passed": float(not failed),
            "robustness.stochastic_model": float(stochastic),
        }
        tables = {
            "accuracy_by_epsilon": curve,
            "corruptions": corruptions,
            "sanity_checks": pd.DataFrame([dataclasses.asdict(c) for c in checks]),
        }
        if len(sample.sensitive.columns):
            groups = group_table(sample.sensitive, robust[:, at], flip).rename(
                columns={"median_flip": "median_flip_epsilon"})
            gap, gap_attribute = largest_gap(groups, min_size=self.min_group_size)
            if gap_attribute is None:  # the data leave the gap undefined: NaN, which fails a gate
                warnings.append(f"no sensitive attribute has two groups of {self.min_group_size}+ attacked examples; "
                                "robustness.group_gap is undefined (NaN)")
                metrics["robustness.group_gap"] = math.nan
            else:
                metrics["robustness.group_gap"] = gap
            tables["by_group"] = groups
        shown = np.flatnonzero(correct & ~sweep.pgd[:, at])[: self.examples]
        adv_pred = model.logits(sweep.pgd_at[shown]).argmax(1).numpy() if len(shown) else np.array([], dtype=int)
        figures = [_curve_figure(curve, eps, self.norm, model.modality)]
        if model.modality == "image":
            figures.append(_image_examples_figure(model, x[shown], sweep.pgd_at[shown], y[shown].numpy(), adv_pred,
                                                  domain))
        elif len(shown):
            tables["examples"] = _table_examples(model, sample, x[shown], sweep.pgd_at[shown], shown, adv_pred)
            figures.append(_table_examples_figure(tables["examples"]))
        figures.append(_corruption_figure(corruptions))
        details = {
            "epsilon": eps, "norm": self.norm, "large_epsilon": large, "examples_attacked": len(y),
            "pgd": dataclasses.asdict(attack),
            "square": {"queries": self.square_queries, "p_init": self.square_p_init,
                       "ran": not stochastic} | ({} if not stochastic else {"reason": (
                           "not run on a random model: its margin changes between draws, so the search would keep "
                           "changes that only a lucky draw made look better")}),
            "apgd": {"steps": self.apgd_steps, "targets": self.apgd_targets, "losses": "cross-entropy, then "
                     "targeted DLR", "ran_on": "what FGSM and PGD left (Square then runs on what APGD left)"},
            "stochastic": stochastic,
            "scoring": f"majority of {draws} forward passes per example (expectation over transformation)"
                       if stochastic else "one forward pass per example",
            "units": f"pixel values (valid range [{model.encoder.low:g}, {model.encoder.high:g}])"
                     if model.modality == "image" else
                     "standard deviations of each continuous column (one-hot and 0/1 columns are never perturbed)",
            "bounds": "encoder range [low, high]" if model.modality == "image" else
                      "per-column min/max of the training data and the audited data, in the model's input space",
        }
        if "robustness.group_gap" in metrics:
            details["group_gap_attribute"] = gap_attribute
        summary = RobustnessSummary(
            metric="robustness.robust_accuracy", correct=int(correct.sum()),
            kept=metrics["robustness.robust_accuracy"] / clean if clean else 0.0, epsilon=eps, norm=self.norm,
            stochastic=stochastic, draws=draws, pgd_accuracy=metrics["robustness.pgd_accuracy"],
            robust_accuracy=metrics["robustness.robust_accuracy"], failed_checks=tuple(failed))
        return Result(analyzer=self.name, metrics=metrics, tables=tables, figures=tuple(figures),
                      arrays={"flip_epsilon": flip, "pgd_correct": sweep.pgd, "robust_correct": robust,
                              "epsilons": grid},
                      config=self.config(), details=details, warnings=tuple(warnings), summary=summary)

    # -- text ---------------------------------------------------------------------------

    def _run_text(self, model, sample, seed: int) -> Result:
        texts, labels = sample.texts, model.labels(sample)
        correct = model.predict_proba(sample).argmax(1) == labels
        chosen = [t for t, ok in zip(texts, correct) if ok]
        budget = {"max_fraction": self.max_words_fraction}
        words = word_substitution(model, chosen, labels[correct], **budget)
        typos = typo_attack(model, chosen, labels[correct], **budget)
        probe = embedding_neighbours(model, chosen, labels[correct], neighbours=self.neighbours, **budget) \
            if model.embedding is not None else None
        corruptions = pd.DataFrame([
            {"corruption": name, "severity": severity, "level": level,
             "accuracy": float((model.predict_proba(noisy).argmax(1) == labels).mean())}
            for name, severity, level, noisy in corrupted_texts(texts, seed=seed)])
        attacks = {"synonym substitution": words, "character typos": typos}
        if probe is not None:
            attacks["embedding-neighbour probe"] = probe
        rates = {name: float(o.flipped.mean()) if len(chosen) else float("nan") for name, o in attacks.items()}
        changed = words.words_changed[words.flipped]
        metrics = {
            "robustness.clean_accuracy": float(correct.mean()),
            "robustness.text_attack_success_rate": rates["synonym substitution"],
            "robustness.typo_attack_success_rate": rates["character typos"],
            "robustness.text_words_changed": float(changed.mean()) if len(changed) else float("nan"),
            "robustness.corruption_accuracy": float(corruptions["accuracy"].mean()),
        }
        if probe is not None:
            metrics["robustness.embedding_neighbour_flip_rate"] = rates["embedding-neighbour probe"]
        summary = pd.DataFrame([
            {"attack": name, "success_rate": rates[name],
             "words_changed_per_success": float(o.words_changed[o.flipped].mean()) if o.flipped.any() else float("nan"),
             "meaning_preserving": name == "synonym substitution"}
            for name, o in attacks.items()])
        tables = {"attacks": summary, "corruptions": corruptions, "swaps": _swap_table(words),
                  "examples": _text_examples(model, chosen, labels[correct], attacks, self.examples)}
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
        details = {"texts_attacked": len(chosen),
                   "candidates": "WordNet 3.0 synonyms of the part of speech WordNet gives the word (no tagger: its "
                                 "dominant one in WordNet's tagged corpus; words ambiguous in part of speech, stop "
                                 "words and irregular inflections are never changed)",
                   "budget": f"at most {self.max_words_fraction:.0%} of a text's words (at least one)"}
        if probe is not None:
            details["embedding_neighbour_probe"] = (
                f"the {self.neighbours} nearest words in the model's own embedding (cosine); a sensitivity probe, not "
                "a meaning-preserving attack, so it is not the headline rate and feeds no finding")
        intervals = {}
        if len(chosen):  # the same Wilson interval the robustness finding states
            ci = binomtest(int(words.flipped.sum()), len(chosen)).proportion_ci(0.95, method="wilson")
            intervals["robustness.text_attack_success_rate"] = (float(ci.low), float(ci.high))
        summary = RobustnessSummary(metric="robustness.text_attack_success_rate", correct=len(chosen),
                                    kept=1 - metrics["robustness.text_attack_success_rate"])
        return Result(analyzer=self.name, metrics=metrics, intervals=intervals, tables=tables,
                      figures=(_text_figure(metrics),), config=self.config(), warnings=warnings, details=details,
                      summary=summary)


def default_epsilon(modality: str, norm: str, domain: Domain) -> float:
    linf = IMAGE_EPSILON * float((domain.high - domain.low).mean()) if modality == "image" else TABLE_EPSILON
    return linf if norm == "linf" else linf * math.sqrt(domain.movable) / 4


def default_large_epsilon(modality: str, norm: str, domain: Domain) -> float:
    """Large enough to reach any valid image, or 10 standard deviations of a table column."""
    linf = float((domain.high - domain.low).max()) if modality == "image" else TABLE_LARGE_EPSILON
    return linf if norm == "linf" else linf * math.sqrt(domain.movable)


@dataclass(frozen=True)
class _Sweep:
    """Per example (rows) and grid epsilon (columns): still correct under FGSM, under PGD, broken by
    Square alone (run on what the others left), broken by APGD alone (run on what FGSM and PGD left),
    and correct under all; PGD's points at grid[at]."""

    fgsm: np.ndarray
    pgd: np.ndarray
    square_only: np.ndarray
    apgd_only: np.ndarray
    robust: np.ndarray
    pgd_at: torch.Tensor


def _sweep(model, x, y, correct, grid, at: int, domain: Domain, attack: PGD, options: Robustness, stochastic: bool,
           seed: int) -> _Sweep:
    draws = attack.draws
    fgsm_ok, pgd_ok, square_only, apgd_only, pgd_at = [], [], [], [], None
    apgd_attacks = []  # APGD-CE, then APGD-T
    if options.apgd_steps:
        apgd_attacks.append(APGD(norm=attack.norm, steps=options.apgd_steps, draws=draws))
        if options.apgd_targets:
            apgd_attacks.append(APGD(norm=attack.norm, steps=options.apgd_steps, targets=options.apgd_targets,
                                     draws=draws))
    for k, e in enumerate(grid):
        fgsm_ok.append(correct & voted_correct(model, fgsm(model, x, y, e, domain, norm=attack.norm, draws=draws),
                                               y, draws))
        adv = pgd(model, x, y, e, domain, config=attack, seed=seed + k)
        pgd_ok.append(correct & voted_correct(model, adv, y, draws))
        pgd_at = adv if k == at else pgd_at
        left = np.flatnonzero(fgsm_ok[-1] & pgd_ok[-1])
        broken = np.zeros(len(y), dtype=bool)
        for config in apgd_attacks:  # each on what the attacks before it left, as AutoAttack runs them
            if len(left):
                fooled = ~voted_correct(model, apgd(model, x[left], y[left], e, domain, config=config, seed=seed + k),
                                        y[left], draws)
                broken[left[fooled]] = True
                left = left[~fooled]
        apgd_only.append(broken)
        broken = np.zeros(len(y), dtype=bool)
        if not stochastic and len(left):
            found = square_attack(model, x[left], y[left], float(e), domain, norm=attack.norm,
                                  queries=options.square_queries, p_init=options.square_p_init, seed=seed + k)
            broken[left] = ~voted_correct(model, found, y[left], draws)
        square_only.append(broken)
    fgsm_ok, pgd_ok, square_only, apgd_only = (np.stack(a, 1) for a in (fgsm_ok, pgd_ok, square_only, apgd_only))
    return _Sweep(fgsm_ok, pgd_ok, square_only, apgd_only, fgsm_ok & pgd_ok & ~square_only & ~apgd_only, pgd_at)


def _corruption_table(model, x, y, domain: Domain, draws: int, seed: int) -> pd.DataFrame:
    corrupt = corrupted_images if model.modality == "image" else corrupted_tables
    return pd.DataFrame([
        {"corruption": name, "severity": severity, "level": level,
         "accuracy": float(voted_correct(model, noisy, y, draws).mean())}
        for name, severity, level, noisy in corrupt(x, domain, seed=seed)])


def _table_examples(model, sample, x, adv, shown, adv_pred) -> pd.DataFrame:
    """The (at most) five most perturbed features of each example, in the data's own units."""
    names = model.feature_names(sample)
    raw_x, raw_adv = _data_units(model, x), _data_units(model, adv)
    decimals = _decimals(model, x.shape[1])
    labels = model.labels(sample)
    rows = []
    for j, i in enumerate(shown):
        change = (adv[j] - x[j]).numpy()
        order = [f for f in np.argsort(-np.abs(change), kind="stable")[:5] if change[f] != 0]
        for f in order:
            rows.append({"example": int(i), "feature": names[f],
                         "original": round(float(raw_x[j, f]), decimals[f]) + 0.0,
                         "adversarial": round(float(raw_adv[j, f]), decimals[f]) + 0.0,
                         "change_model_units": float(change[f]),
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


def _decimals(model, width: int) -> list[int]:
    """Decimals that show a column in its data units to 1/1000 of its standard deviation: the float
    error of mapping back (a 0 read as -1.3e-05) rounds away; an attack moves 0.2 of one."""
    scales = np.ones(width)
    encoder = model.encoder
    if not encoder.passthrough and encoder.numeric:
        scales[:len(encoder.numeric)] = np.asarray(encoder.stds, dtype=np.float64)
    return [3 - math.floor(math.log10(scale)) for scale in scales]


def _text_examples(model, texts, labels, attacks: dict[str, TextAttackOutcome], n: int) -> pd.DataFrame:
    rows = []
    for attack, outcome in attacks.items():
        for i in np.flatnonzero(outcome.flipped)[:n]:
            rows.append({"attack": attack, "original": texts[i], "adversarial (changes marked)": outcome.marked[i],
                         "words_changed": len(outcome.changes[i]), "prediction": model.classes[int(labels[i])],
                         "adversarial_prediction": model.classes[int(model.predict([outcome.texts[i]])[0])]})
    return pd.DataFrame(rows, columns=["attack", "original", "adversarial (changes marked)", "words_changed",
                                       "prediction", "adversarial_prediction"])


def _swap_table(outcome: TextAttackOutcome) -> pd.DataFrame:
    """Every synonym swap of the successful attacks: the word, its substitute, their part of speech and how
    many flipped texts made that swap, the most frequent first."""
    pos_names = {"n": "noun", "v": "verb", "a": "adjective", "r": "adverb"}
    table = load_synonyms()
    swaps = pd.DataFrame([(old, new) for changes in outcome.changes for _, old, new in changes],
                         columns=["original", "substitute"])
    counts = swaps.value_counts(sort=False).rename("texts").reset_index()
    counts.insert(2, "part_of_speech", [pos_names[table[w].pos] for w in counts["original"]])
    return counts.sort_values(["texts", "original", "substitute"], ascending=[False, True, True],
                              kind="stable").reset_index(drop=True)


# -- figures ------------------------------------------------------------------------------

def _curve_figure(curve: pd.DataFrame, eps: float, norm: str, modality: str):
    fig, ax = new_figure(5.0, 3.4)
    ax.plot(curve["epsilon"], curve["fgsm_accuracy"], marker="o", label="FGSM", color="#f58518")
    ax.plot(curve["epsilon"], curve["pgd_accuracy"], marker="o", label="PGD", color="#4c78a8")
    ax.plot(curve["epsilon"], curve["robust_accuracy"], marker="x", label="all attacks (with Square, APGD)",
            color="#54a24b")
    ax.axvline(eps, linestyle="--", color="#888", linewidth=1)
    ax.set_ylim(-0.02, 1.02)
    units = "pixel values" if modality == "image" else "standard deviations"
    ax.set_xlabel(f"epsilon ({'L-inf' if norm == 'linf' else 'L2'}, {units})")
    ax.set_ylabel("robust accuracy")
    ax.legend(fontsize=8)
    return to_figure(fig, title="Robust accuracy by epsilon", caption=(
        "Accuracy on the attacked sample when every input may move by up to epsilon (epsilon 0 is the clean "
        "accuracy). The dashed line marks the configured epsilon, where the gateable metrics are taken. A curve "
        "that falls fast means small nudges flip the model. PGD should lie at or below FGSM, and the green curve "
        "(an example counts only if FGSM, PGD, the gradient-free Square attack and APGD all fail on it) close to "
        "PGD; a gap between them means the gradient is masked and PGD's curve flatters."))


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
        "adversarial image (right, labelled with the class the model now predicts)."), gallery=True)


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
        "original and adversarial values in the data's units). One-hot columns are never moved."), gallery=True)


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
