"""What robustness found on each attacked example (`Result.examples`), read from the arrays its run keeps.

Images and tables, per example:
- `robustness.correct`: classified correctly before any attack (the attacks start from these);
- `robustness.robust`: still correct at the configured epsilon after every attack (FGSM, PGD, APGD, Square);
  its mean is `robustness.robust_accuracy`;
- `robustness.broken_at`: the smallest epsilon of the sweep at which some attack run there broke it (0: wrong
  before any attack; null: none did within the sweep); `robustness.<attack>_broken_at` the same for one attack
  (fgsm, pgd; apgd and square run from the configured epsilon on, on what the attacks before them left);
- `robustness.flip_epsilon`: the smallest epsilon at which PGD flips it, refined between the sweep's points (inf:
  not within the sweep; null: wrong before any attack); its median over the correct ones is
  `robustness.median_flip_epsilon`;
- `robustness.corruptions_survived`: the share of corruptions and severities it stays correct under (its mean is
  `robustness.corruption_accuracy`); `robustness.corruptions_broken`: those that broke it, as
  "<corruption> <severity>".

Texts: `robustness.correct`; `robustness.<attack>_flipped` (synonym, typo, neighbour) and
`robustness.<attack>_words_changed` (words the successful attack changed; null when it failed or the text was
wrong to begin with); the corruption columns as above.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from audit.core.result import Result

TEXT_ATTACKS = ("synonym", "typo", "neighbour")


def robustness_examples(result: Result, positions: np.ndarray) -> pd.DataFrame | None:
    """The per-example outcomes of `result`, whose sample holds the rows `positions` of the data it was given;
    None when the run kept no per-example arrays."""
    arrays = result.arrays
    if "corrupted_correct" not in arrays:
        return None
    corruptions = result.tables["corruptions"]
    settings = [f"{name} {severity}" for name, severity in zip(corruptions["corruption"], corruptions["severity"])]
    kept = arrays["corrupted_correct"]
    columns = _text(arrays) if "correct" in arrays else _continuous(arrays, result.details["epsilon"])
    columns["robustness.corruptions_survived"] = kept.mean(axis=1)
    columns["robustness.corruptions_broken"] = [[s for s, ok in zip(settings, row) if not ok] for row in kept]
    return pd.DataFrame(columns, index=pd.Index(positions, name="row"))


def _continuous(arrays, epsilon: float) -> dict:
    grid, flip = arrays["epsilons"], arrays["flip_epsilon"]
    correct = ~np.isnan(flip)
    at = int(np.searchsorted(grid, epsilon))
    broken = {"": ~arrays["robust_correct"], "fgsm_": ~arrays["fgsm_correct"], "pgd_": ~arrays["pgd_correct"],
              "apgd_": arrays["apgd_broke"], "square_": arrays["square_broke"]}
    columns = {"robustness.correct": correct, "robustness.robust": arrays["robust_correct"][:, at]}
    for attack, mask in broken.items():
        first = np.where(mask.any(axis=1), grid[mask.argmax(axis=1)], np.nan)
        columns[f"robustness.{attack}broken_at"] = np.where(correct, first, 0.0)
    columns["robustness.flip_epsilon"] = flip
    return columns


def _text(arrays) -> dict:
    correct = arrays["correct"]
    columns = {"robustness.correct": correct}
    for attack in TEXT_ATTACKS:
        if f"{attack}_flipped" not in arrays:
            continue
        flipped = np.full(len(correct), None, dtype=object)
        flipped[correct] = arrays[f"{attack}_flipped"]
        changed = np.full(len(correct), np.nan)
        changed[np.flatnonzero(correct)[arrays[f"{attack}_flipped"]]] = \
            arrays[f"{attack}_words_changed"][arrays[f"{attack}_flipped"]]
        columns[f"robustness.{attack}_flipped"] = flipped
        columns[f"robustness.{attack}_words_changed"] = changed
    return columns
