"""The robustness of an image or table model: FGSM and PGD over an epsilon sweep with APGD and Square from the
configured epsilon on, the smallest epsilon that flips each example, attack sanity checks, corruptions and
robustness by group."""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch

from audit.analyzers.robustness.epsilons import attack_grid, default_large_epsilon
from audit.analyzers.robustness.examples import table_examples
from audit.analyzers.robustness.figures import (corruption_figure, curve_figure, image_examples_figure,
                                                table_examples_figure)
from audit.analyzers.robustness.summary import RobustnessSummary
from audit.analyzers.robustness.sweep import attack_sweep
from audit.core.result import Result
from audit.methods.attributions.sampling import seeded
from audit.methods.robustness.attacks import PGD, flip_epsilons, pgd
from audit.methods.robustness.corruptions import corrupted_images, corrupted_tables
from audit.methods.robustness.domain import Domain
from audit.methods.robustness.groups import group_table, largest_gap
from audit.methods.robustness.sanity import sanity_checks
from audit.methods.robustness.stochastic import is_stochastic, voted_correct

if TYPE_CHECKING:
    from audit.analyzers.robustness.analyzer import Robustness


def run_continuous(options: Robustness, model, data, sample, seed: int) -> Result:
    """Images and tables: the attack sweep, flip epsilons, sanity checks, corruptions, groups."""
    with seeded(seed, model.device):  # a random model's draws are part of the seeded work
        return _attack(options, model, data, sample, seed)


def _attack(options: Robustness, model, data, sample, seed: int) -> Result:
    domain, eps, grid, at = attack_grid(options, model, data, model.encode(data))
    x, y = model.encode(sample), torch.from_numpy(model.labels(sample))
    stochastic = is_stochastic(model, x)
    draws = options.draws if stochastic else 1
    attack = PGD(norm=options.norm, steps=options.steps, step_size=options.step_size, restarts=options.restarts,
                 random_start=options.random_start, draws=draws)
    correct = voted_correct(model, x, y, draws)
    sweep = attack_sweep(model, x, y, correct, grid, domain, attack, options, stochastic, seed, at=at)

    flip = np.full(len(y), np.nan)
    flip[correct] = flip_epsilons(model, x[correct], y[correct], grid, sweep.pgd[correct], domain,
                                  config=attack, refine=options.flip_refine, seed=seed + len(grid),
                                  adversarial=sweep.pgd_adv[correct])
    median_flip = float(np.median(flip[correct])) if correct.any() else float("nan")
    warnings = []
    if math.isinf(median_flip):
        median_flip = float(grid[-1])
        warnings.append(f"PGD flips fewer than half of the correct examples within the sweep; the median "
                        f"flip epsilon is above {grid[-1]:.3g} (reported as that)")

    # No random start: the point must be reached by following the gradient, which a
    # random draw over a ball this large would otherwise do alone (Carlini et al., 2019).
    large = options.large_epsilon or default_large_epsilon(model.modality, options.norm, domain)
    large_domain = domain if model.modality == "image" else domain.without_bounds()
    large_attack = dataclasses.replace(attack, random_start=False, restarts=1)
    large_correct = np.zeros_like(correct)
    large_correct[correct] = voted_correct(model, pgd(model, x[correct], y[correct], large, large_domain,
                                                      config=large_attack, seed=seed + len(grid) + 1),
                                           y[correct], draws)
    checks = sanity_checks(grid=grid, clean=float(correct.mean()), fgsm=sweep.fgsm.mean(0), pgd=sweep.pgd.mean(0),
                           beyond_pgd=float((sweep.square_only | sweep.apgd_only)[:, at].mean()), at=at,
                           large=large_correct.mean(),
                           large_epsilon=large, stochastic=stochastic, draws=draws,
                           tolerance=options.sanity_tolerance, large_max_accuracy=options.large_max_accuracy)
    failed = [c for c in checks if not c.passed]
    warnings += [f"attack sanity check failed ({c.name}{'' if math.isnan(c.epsilon) else f' at {c.epsilon:.3g}'}): "
                 f"{c.detail}; the robustness shown may be false (masked gradients)" for c in failed]

    corruptions, corrupted_correct = _corruption_table(model, x, y, domain, draws, seed)
    robust = sweep.robust
    below = np.arange(len(grid)) < at  # where the ensemble has not run: its shares are unknown, not 0
    curve = pd.DataFrame({"epsilon": np.concatenate([[0.0], grid]),
                          "fgsm_accuracy": np.concatenate([[correct.mean()], sweep.fgsm.mean(0)]),
                          "pgd_accuracy": np.concatenate([[correct.mean()], sweep.pgd.mean(0)]),
                          "square_only_share": np.concatenate([[0.0], np.where(below, np.nan,
                                                                               sweep.square_only.mean(0))]),
                          "apgd_only_share": np.concatenate([[0.0], np.where(below, np.nan, sweep.apgd_only.mean(0))]),
                          "robust_accuracy": np.concatenate([[correct.mean()], robust.mean(0)]),
                          "attacks": ["none"] + _attacks_run(options, stochastic, grid, at)})
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
        gap, gap_attribute = largest_gap(groups, min_size=options.min_group_size)
        if gap_attribute is None:  # the data leave the gap undefined: NaN, which fails a gate
            warnings.append(f"no sensitive attribute has two groups of {options.min_group_size}+ attacked examples; "
                            "robustness.group_gap is undefined (NaN)")
            metrics["robustness.group_gap"] = math.nan
        else:
            metrics["robustness.group_gap"] = gap
        tables["by_group"] = groups
    shown = np.flatnonzero(correct & ~sweep.pgd[:, at])[: options.examples]
    adv_pred = model.logits(sweep.pgd_adv[shown]).argmax(1).numpy() if len(shown) else np.array([], dtype=int)
    figures = [curve_figure(curve, eps, options.norm, model.modality)]
    if model.modality == "image":
        figures.append(image_examples_figure(model, x[shown], sweep.pgd_adv[shown], y[shown].numpy(), adv_pred,
                                              domain))
    elif len(shown):
        tables["examples"] = table_examples(model, sample, x[shown], sweep.pgd_adv[shown], shown, adv_pred)
        figures.append(table_examples_figure(tables["examples"]))
    figures.append(corruption_figure(corruptions))
    details = {
        "epsilon": eps, "norm": options.norm, "large_epsilon": large, "examples_attacked": len(y),
        "pgd": dataclasses.asdict(attack),
        "square": {"queries": options.square_queries, "p_init": options.square_p_init,
                   "ran": not stochastic} | ({} if not stochastic else {"reason": (
                       "not run on a random model: its margin changes between draws, so the search would keep "
                       "changes that only a lucky draw made look better")}),
        "apgd": {"steps": options.apgd_steps, "targets": options.apgd_targets, "losses": "cross-entropy, then "
                 "targeted DLR", "ran_on": "what FGSM and PGD left and no attack broke at a smaller "
                 "epsilon, at the configured epsilon and the larger ones of the sweep (Square then runs on what "
                 "APGD left); the curve's points below the configured epsilon are FGSM and PGD only"},
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
        kept=metrics["robustness.robust_accuracy"] / clean if clean else 0.0, epsilon=eps, norm=options.norm,
        stochastic=stochastic, draws=draws, pgd_accuracy=metrics["robustness.pgd_accuracy"],
        robust_accuracy=metrics["robustness.robust_accuracy"], failed_checks=tuple(failed))
    return Result(analyzer=options.name, metrics=metrics, tables=tables, figures=tuple(figures),
                  arrays={"flip_epsilon": flip, "pgd_correct": sweep.pgd, "robust_correct": robust,
                          "epsilons": grid, "fgsm_correct": sweep.fgsm, "apgd_broke": sweep.apgd_only,
                          "square_broke": sweep.square_only, "corrupted_correct": corrupted_correct},
                  config=options.config(), details=details, warnings=tuple(warnings), summary=summary)


def _attacks_run(options: Robustness, stochastic: bool, grid: np.ndarray, at: int) -> list[str]:
    """The attacks each point of the curve counts: FGSM and PGD, and from the configured epsilon `grid[at]` on
    the ensemble."""
    attacks = [name for name, ran in (("APGD-CE", options.apgd_steps), ("APGD-T", options.apgd_steps and
                                      options.apgd_targets), ("Square", not stochastic)) if ran]
    return [", ".join(["FGSM", "PGD"] + (attacks if k >= at else [])) for k in range(len(grid))]


def _corruption_table(model, x, y, domain: Domain, draws: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """The accuracy under each corruption and severity (table rows), and which example each kept correct
    (examples x table rows)."""
    corrupt = corrupted_images if model.modality == "image" else corrupted_tables
    rows, kept = [], []
    for name, severity, level, noisy in corrupt(x, domain, seed=seed):
        kept.append(voted_correct(model, noisy, y, draws))
        rows.append({"corruption": name, "severity": severity, "level": level, "accuracy": float(kept[-1].mean())})
    return pd.DataFrame(rows), np.stack(kept, 1)
