"""Robustness: adversarial attacks, natural corruptions, attack sanity and robustness by group.

Images and tables: FGSM and PGD over an epsilon sweep in the model's input space (see
`audit.methods.robustness.domain` for the units and bounds), and from the configured epsilon on, as
AutoAttack runs them, each on what the attacks before it left: APGD with the cross-entropy and the
targeted DLR loss (`audit.methods.robustness.apgd`) and the gradient-free Square attack. An example counts as robust
only when no attack breaks it; one broken at a smaller epsilon counts as broken at every larger one
and is not attacked again (`audit.analyzers.robustness.sweep`). What APGD and Square break beyond PGD
is the check on PGD's gradient at the configured epsilon. Then the smallest epsilon at which PGD flips each
correctly classified example (bisection from PGD's adversarials), and corruptions. A model that is
random at inference is attacked with expectation over transformation and scored by a vote
(`audit.methods.robustness.stochastic`). Text: substitution of WordNet synonyms of the same part
of speech (the headline) and typo attacks, typos as a corruption, and the embedding-neighbour probe,
reported apart since its swaps need not keep the meaning (`audit.methods.robustness.text_attacks`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from audit._util.errors import AuditInputError
from audit.analyzers.robustness.continuous import run_continuous
from audit.analyzers.robustness.findings import robustness_findings
from audit.analyzers.robustness.per_example import robustness_examples
from audit.analyzers.robustness.pilot import pilot
from audit.analyzers.robustness.text import run_text
from audit.core.analyzer import Analyzer, Cost, Probed, UNPROBED, register_analyzer
from audit.core.result import MetricSpec, Result
from audit.methods.attributions.sampling import explained_samples
from audit.methods.fairness.intervals import wilson
from audit.methods.robustness.attacks import NORMS
from audit.methods.robustness.corruptions import IMAGE_LEVELS, SEVERITIES, TABLE_LEVELS
from audit.methods.robustness.square import P_INIT
from audit.methods.robustness.stochastic import CHECK_PASSES, CHECK_ROWS

DEFAULT_SAMPLES = {"image": 256, "tabular": 256, "text": 32}
WILSON_Z = 1.96  # 95%
SURVIVING = 0.82  # without a pilot: the planned share of the examples unbroken at one epsilon that survive the next
TO_BREAK = 0.3  # share of PGD's steps an example takes at the epsilon that breaks it (a step: 2.5 epsilon / steps)
LARGE_STEPS = 2  # PGD's steps at the sanity check's large epsilon (one or two on every reference model)
TEXT_QUERIES = 400  # planned forwards per text for the synonym, typo and neighbour attacks
OWN_SECONDS = 4.0  # the attacks' own loops, corruptions and figures (adult-mlp, 256 examples: 4.4 s in all, quiet)
TEXT_SECONDS = 0.5  # the text attacks' own work besides the model (reviews-lstm, 32 texts: 0.9 s in all, quiet)


@register_analyzer
@dataclass(frozen=True, kw_only=True)
class Robustness(Analyzer):
    """How far inputs must move to flip the model, how it bears natural corruptions, and
    whether the attacks themselves can be trusted.

    `epsilon` (None: 0.1 of the image range or 0.2 standard deviations of a table column,
    L-inf; under L2 that times sqrt(movable features) / 4) is where the gateable metrics
    are taken; `sweep` lists the epsilons of the curve as multiples of it. `samples`
    examples are drawn (seeded) from the data (None: 256, or 32 texts). FGSM and PGD run at every
    epsilon of the sweep; from the configured one on APGD-CE and APGD-T (`apgd_targets` most likely wrong
    classes, 0: none) take `apgd_steps` steps (0: no APGD) on what FGSM and PGD left, then Square runs
    `square_queries` queries on what they all left, neither on what an attack broke at a smaller
    epsilon (AutoAttack: 100 APGD
    steps, 9 targets, 5,000 queries; torchattacks' version 10 steps; these defaults match torchattacks'
    within 0.5 points at a fifth of its time on the models of benchmarks/robustness.py).
    A random model is attacked
    with `draws` forward passes per gradient and scored by the majority of `draws` passes.
    The flip epsilon is bisected `flip_refine` times between the sweep's epsilons around it, to an eighth of
    their gap: against a fourth bisection it is the same or a sixteenth of the gap higher, and the fourth,
    whose failing PGD runs take every step, cost a seventh of the analyzer's time on a 224 px ResNet. Text
    attacks change at most `max_words_fraction` of a text's words; the embedding-neighbour probe draws from
    each word's `neighbours` nearest words in the model's embedding.
    """

    samples: int | None = None
    epsilon: float | None = None
    norm: str = "linf"
    sweep: tuple[float, ...] = (0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 5.0)
    steps: int = 20
    step_size: float | None = None
    restarts: int = 1
    random_start: bool = True
    flip_refine: int = 3
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
    concern = "Robustness"
    title = "Robustness"
    description = ("adversarial attacks (FGSM, PGD, Square, synonym substitution, typos), corruptions, attack sanity, "
                   "by group")
    metric_prefix = "robustness"
    judged_by = "robust_accuracy_ratio_min"
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

    def headlines(self, model) -> tuple[str, ...]:
        """Texts: the synonym attack's success rate, never a robust accuracy; images and tables the reverse."""
        other = "robustness.robust_accuracy" if model.modality == "text" else "robustness.text_attack_success_rate"
        return tuple(m for m in self.headline if m != other)

    def pilot(self, model, data):
        return None if model.modality == "text" else pilot(self, model, data)

    def cost(self, model, rows: int, *, probed: Probed = UNPROBED) -> Cost:
        """The attacks work on the examples the model gets right (`probed.accuracy` of them), smallest epsilon
        first, each until it breaks: FGSM and PGD on what neither has broken yet (every step on what survives an
        epsilon, a share TO_BREAK of them on what breaks there), APGD and Square on what survives from the
        configured epsilon on; then the flip epsilons' bisection (half its rounds find no flip and take every
        step) and the large-epsilon check on them; the clean pass and the corruptions on every example, the
        randomness check on a few. Where each example first breaks is the pilot's
        (`audit.analyzers.robustness.pilot`), else a share SURVIVING of those left at one epsilon survives the next.
        A model random at inference (the pilot's draws) makes each pass `draws` times, takes every PGD step and
        runs no Square. Texts: TEXT_QUERIES forwards per correct text."""
        n = min(self.sample_rows(model), rows)
        right = n * probed.accuracy
        if model.modality == "text":
            return Cost(forward=right * TEXT_QUERIES, seconds=TEXT_SECONDS)
        grid = sorted(set(self.sweep) | {1.0})
        at, steps = grid.index(1.0), np.arange(len(grid))
        piloted = probed.pilots.get(self.name)
        if piloted is None:
            attacked, survive, draws = SURVIVING**steps, SURVIVING ** (steps + 1), 1
        else:
            broken_at = piloted.broken_at[:, None]
            attacked, survive, draws = (broken_at >= steps).mean(0), (broken_at > steps).mean(0), piloted.draws
        broke = attacked - survive
        targets = min(self.apgd_targets, len(model.classes) - 1)
        apgd = self.apgd_steps * (1 + targets) if self.apgd_steps else 0
        pgd = self.steps * self.restarts
        if draws > 1:  # on a model random at inference PGD takes every step, and Square does not run
            to_break, refine, large, queries = self.steps, self.steps, self.steps, 0
        else:
            to_break, refine, large = TO_BREAK * self.steps, self.steps / 2 + 1, LARGE_STEPS
            queries = self.square_queries
        flipped = 1 - survive[-1]
        backward = (attacked.sum() + survive.sum() * pgd + broke.sum() * to_break + survive[at:].sum() * apgd
                    + flipped * self.flip_refine * refine + large)
        forward = attacked.sum() * 2 + survive[at:].sum() * queries + flipped * self.flip_refine + 1
        corruptions = len(SEVERITIES) * len(IMAGE_LEVELS if model.modality == "image" else TABLE_LEVELS)
        return Cost(forward=(right * forward + n * (corruptions + 1)) * draws + CHECK_PASSES * min(n, CHECK_ROWS),
                    backward=right * backward * draws, seconds=OWN_SECONDS)

    def interval(self, result):
        """The robust accuracy's Wilson interval over the attacked examples, where the result gives none."""
        given = super().interval(result)
        if given is not None or "robust_correct" not in result.arrays:
            return given
        n = len(result.arrays["robust_correct"])
        _, low, high = wilson(result.metrics["robustness.robust_accuracy"] * n, n, WILSON_Z)
        return float(low), float(high)

    def supports(self, model, data) -> bool:
        if model.modality == "text":
            return True
        return model.modality == "image" or bool(model.encoder.continuous_mask(data).any())

    def findings(self, result, thresholds):
        return tuple(robustness_findings(result.summary, thresholds))

    def decided(self, result, thresholds):
        """The share of the correct examples no attack flipped, in the Wilson interval its finding judges, lies
        wholly on one side of `robust_accuracy_ratio_min`."""
        summary = result.summary
        if summary is None or not summary.correct or summary.kept != summary.kept:
            return False
        _, low, high = wilson(round(summary.kept * summary.correct), summary.correct, WILSON_Z, continuity=False)
        limit = thresholds[self.judged_by]
        return bool(high < limit or low >= limit)

    def run(self, model, data, *, seed: int = 0) -> Result:
        # as data.sample(n, seed=seed) draws them, with the positions kept for the per-example table
        positions = explained_samples(model, data, self.sample_rows(model), seed=seed, misclassified=False)
        sample = data if len(positions) == len(data) else data.subset(positions)
        if model.modality == "text":
            result = run_text(self, model, sample, seed)
        else:
            result = run_continuous(self, model, data, sample, seed)
        return dataclasses.replace(result, examples=robustness_examples(result, positions))
