"""Coverage study of the fairness intervals: do they hold their promised 95%?

For two groups of given sizes, a base rate and a true gap, draws `--samples` independent
audits from counts (each group's tn/fp/fn/tp cells from a multinomial; no rows are made),
and reports, per disparity and method:

- coverage: how often the interval holds the true disparity (promised: 0.95);
- false passes: how often an upper-bound gate whose `max` lies just below the true gap
  passes (the upper bound falls below it); promised at most 2.5% (the upper tail); for the
  ratios, a lower-bound gate whose `min` lies just above the true ratio;
- width: the mean interval width.

Methods: "ours" (audit.methods.fairness.intervals: Newcombe's continuity-corrected hybrid score
interval, its error split 1/4 above and 3/4 below, Bonferroni over the comparisons below),
"newcombe" (Newcombe's plain hybrid score interval, method 10, equal tails, the largest
bounds over the comparisons) and "bootstrap" (the analyzer's former basic bootstrap
over the rows, kept here as the "before", 1,000 resamples; slow, so on fewer samples).

The true model, per group: P(label = 1) is the base rate; group a predicts positive with
true positive rate 0.7 and false positive rate 0.1 (demographic parity: both equal the base
rate, so the selection rate is the base rate); group b is shifted by the gap: demographic
parity raises both rates by it; equal opportunity lowers the true positive rate; equalized
odds lowers the true positive rate and raises the false positive rate (both components at
the gap); accuracy lowers the true positive rate and raises the false positive rate, which
lowers accuracy by exactly the gap. The ratios use their difference's setting; their true
value is computed from it.

    python benchmarks/interval_coverage.py                 # the full grid (a few minutes)
    python benchmarks/interval_coverage.py --bootstrap 0   # without the slow bootstrap column
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from scipy.stats import norm

from audit.methods.fairness.metrics import disparities_from_cells
from audit.methods.fairness.intervals import gap_bounds, worst_gap_interval, worst_ratio_interval
from audit.methods.fairness.metrics import COMPARES

SIZES = ((30, 30), (100, 100), (1_000, 1_000), (10_000, 10_000), (30, 1_000))
BASE_RATES = (0.05, 0.3, 0.5)
GAPS = (0.0, 0.05, 0.1, 0.2)
METRICS = ("demographic_parity_difference", "equalized_odds_difference", "equal_opportunity_difference",
           "accuracy_difference", "demographic_parity_ratio", "equalized_odds_ratio")
CONFIDENCE = 0.95
BELOW = 1e-9  # the gate's max sits this far below the true gap


def cell_probabilities(metric: str, base: float, gap: float) -> np.ndarray:
    """(2 groups, 4) probabilities of tn, fp, fn, tp."""
    if metric.startswith("demographic_parity"):
        rates = [(base, base), (base + gap, base + gap)]
    elif metric == "equal_opportunity_difference":
        rates = [(0.7, 0.1), (0.7 - gap, 0.1)]
    else:
        rates = [(0.7, 0.1), (0.7 - gap, 0.1 + gap)]
    return np.array([[(1 - base) * (1 - fpr), (1 - base) * fpr, base * (1 - tpr), base * tpr]
                     for tpr, fpr in rates])


def simulate(metric: str, sizes, base: float, gap: float, samples: int, seed: int) -> np.ndarray:
    """(samples, 2, 4) cell counts."""
    rng = np.random.default_rng(seed)
    probabilities = cell_probabilities(metric, base, gap)
    return np.stack([rng.multinomial(n, p, size=samples) for n, p in zip(sizes, probabilities)], axis=1)


def rates(metric: str, cells: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """The (successes, trials) per group that `metric` compares."""
    tn, fp, fn, tp = np.moveaxis(cells, -1, 0)
    selection, accuracy = (fp + tp, tn + fp + fn + tp), (tp + tn, tn + fp + fn + tp)
    tpr, fpr = (tp, tp + fn), (fp, fp + tn)
    return {"demographic_parity_difference": [selection], "equalized_odds_difference": [tpr, fpr],
            "equal_opportunity_difference": [tpr], "accuracy_difference": [accuracy],
            "demographic_parity_ratio": [selection], "equalized_odds_ratio": [tpr, fpr]}[metric]


def truth(metric: str, probabilities: np.ndarray) -> float:
    """The true disparity of the two groups' cell probabilities."""
    values = [x / n for x, n in rates(metric, probabilities[None])]
    if COMPARES[metric][1] == "difference":
        return float(max(abs(v[0, 0] - v[0, 1]) for v in values))
    return float(min(v[0].min() / v[0].max() for v in values))


def newcombe_intervals(metric: str, cells: np.ndarray):  # differences only
    """Newcombe's plain hybrid score interval (method 10) of each comparison at 95%, largest bounds taken."""
    z = norm.ppf(1 - (1 - CONFIDENCE) / 2)
    bounds = [gap_bounds(rate, z, continuity=False) for rate in rates(metric, cells)]
    return (np.max(np.concatenate([lo for lo, _ in bounds], axis=-1), axis=-1),
            np.max(np.concatenate([hi for _, hi in bounds], axis=-1), axis=-1))


def basic_interval(estimate: float, replicates: np.ndarray) -> tuple[float, float]:
    """The former analyzer's interval: basic (reverse-percentile) bootstrap, widened to hold the estimate
    and clipped to [0, 1]."""
    finite = replicates[np.isfinite(replicates)]
    if not np.isfinite(estimate) or len(finite) == 0:
        return float("nan"), float("nan")
    q_low, q_high = np.quantile(finite, [(1 - CONFIDENCE) / 2, (1 + CONFIDENCE) / 2])
    return (float(np.clip(min(2 * estimate - q_high, estimate), 0, 1)),
            float(np.clip(max(2 * estimate - q_low, estimate), 0, 1)))


def bootstrap_intervals(metric: str, cells: np.ndarray, resamples: int, seed: int):
    """The former analyzer's interval: a row bootstrap (multinomial over the group x cell strata), basic
    interval widened to hold the estimate."""
    rng = np.random.default_rng(seed)
    low, high = np.empty(len(cells)), np.empty(len(cells))
    for s, observed in enumerate(cells):
        flat = observed.ravel()
        estimate = disparities_from_cells(observed[None])[metric][0]
        draws = rng.multinomial(flat.sum(), flat / flat.sum(), size=resamples).reshape(resamples, -1, 4)
        low[s], high[s] = basic_interval(estimate, disparities_from_cells(draws)[metric])
    return low, high


def summarize(low, high, true: float, difference: bool) -> dict[str, float]:
    """Coverage, mean width, and the false-pass rate of a gate set just past the true value on the gate's side
    (a difference's `max` just below it, read against the upper bound; a ratio's `min` just above it, against
    the lower bound)."""
    computed = np.isfinite(low) & np.isfinite(high)
    low, high = low[computed], high[computed]
    covered = (low <= true + 1e-12) & (true - 1e-12 <= high)
    if difference:
        false_pass = (high < true - BELOW) if true > 0 else np.zeros(len(high), dtype=bool)
    else:
        false_pass = (low > true + BELOW) if true < 1 else np.zeros(len(low), dtype=bool)
    return {"coverage": covered.mean(), "false_pass": false_pass.mean(), "width": (high - low).mean(),
            "computed": computed.mean()}


def study(metric: str, sizes, base: float, gap: float, *, samples: int, bootstrap: int, seed: int) -> dict:
    """{method: summary} for one cell of the grid."""
    cells = simulate(metric, sizes, base, gap, samples, seed)
    true = truth(metric, cell_probabilities(metric, base, gap))
    difference = COMPARES[metric][1] == "difference"
    worst = worst_gap_interval if difference else worst_ratio_interval
    out = {"ours": summarize(*worst(rates(metric, cells), CONFIDENCE), true, difference)}
    if difference:
        out["newcombe"] = summarize(*newcombe_intervals(metric, cells), true, difference)
    if bootstrap:
        out["bootstrap"] = summarize(*bootstrap_intervals(metric, cells[:bootstrap], 1000, seed), true, difference)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=2000, help="simulated audits per cell (score methods)")
    parser.add_argument("--bootstrap", type=int, default=500, help="of those, bootstrapped (0: skip)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    start = time.perf_counter()
    methods = ("ours", "newcombe", "bootstrap") if args.bootstrap else ("ours", "newcombe")
    header = "metric                        sizes        base  gap  " + "  ".join(
        f"{m:>9} cov  fail  width" for m in methods)
    print(header)
    worst = {m: (1.0, 0.0) for m in methods}
    for metric in METRICS:
        for sizes in SIZES:
            for base in BASE_RATES:
                for k, gap in enumerate(GAPS):
                    res = study(metric, sizes, base, gap, samples=args.samples, bootstrap=args.bootstrap,
                                seed=args.seed + k)
                    line = f"{metric[:29]:29} {sizes[0]:>5}/{sizes[1]:<6} {base:4.2f} {gap:4.2f}  "
                    for m in methods:
                        if m not in res:
                            line += f"  {'':>9}{'-':>5} {'-':>5} {'-':>6}"
                            continue
                        r = res[m]
                        line += f"  {'':>9}{r['coverage']:4.3f} {r['false_pass']:5.3f} {r['width']:6.3f}"
                        worst[m] = (min(worst[m][0], r["coverage"]), max(worst[m][1], r["false_pass"]))
                    if res["ours"]["computed"] < 1:
                        line += f"  (computed in {res['ours']['computed']:.0%})"
                    print(line, flush=True)
    for m in methods:
        print(f"{m:>9}: lowest coverage {worst[m][0]:.3f}, highest false-pass rate {worst[m][1]:.3f}"
              f"{' (differences only)' if m == 'newcombe' else ''}")
    print(f"{time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
