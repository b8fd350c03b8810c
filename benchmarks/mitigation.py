"""Full-size mitigation numbers and timings: issue 14's acceptance, measured on the untouched test splits.

    python benchmarks/mitigation.py [--zoo FOLDER] [--threads N]

Trains (into FOLDER, default a temporary one; checkpoints already there are reused) the biased and
fragile reference models and their mitigated variants, post-processes adult-mlp-biased with group
thresholds for both constraints, and prints per method: training or fitting time, balanced accuracy
and its loss against adult-mlp-biased, and the sex demographic parity and equalized odds differences
with their upper interval bounds (goals: DP upper < 0.2, or EO upper < 0.1 for an equalized-odds
method; loss at most 0.03). Then digits-cnn-pgd against digits-cnn-fragile: clean accuracy, PGD
accuracy ratio at the default epsilon, sanity checks (goals: ratio at least 0.15 higher, clean
accuracy >= 0.95, sanity passed). Times depend on the machine and its load; the tests check effects.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import torch

import audit
from audit.cli import main as cli_main
from audit.mitigation.postprocess import with_thresholds

ROOT = Path(__file__).resolve().parents[1]
FAIR = ("adult-mlp-biased", "adult-mlp-reweighed", "adult-mlp-lagrangian", "adult-mlp-adversarial-debiasing")
ROBUST = ("digits-cnn-fragile", "digits-cnn-pgd")
SEX = "sex"


def trained(folder: Path, name: str) -> tuple[audit.Model, float]:
    path = folder / f"{name}.pt"
    if not path.exists():
        shutil.copy(ROOT / "models" / f"{name}.toml", folder / f"{name}.toml")
        if cli_main(["train", str(folder / f"{name}.toml"), "--quiet"]) != 0:
            raise SystemExit(f"training {name} failed")
    model = audit.load_model(path)
    return model, float(model.task.metrics.get("train_seconds", float("nan")))


def fairness_row(name: str, model: audit.Model, test, seconds: float, baseline: float | None) -> dict:
    run = audit.run(model, test, ["performance", "fairness"])
    metrics, intervals = run.metrics, run.intervals
    bacc = metrics["performance.balanced_accuracy"]
    return {"method": name, "seconds": seconds, "balanced_accuracy": bacc,
            "loss": (baseline - bacc) if baseline is not None else 0.0,
            "dp": metrics[f"fairness.{SEX}.demographic_parity_difference"],
            "dp_upper": intervals[f"fairness.{SEX}.demographic_parity_difference"][1],
            "eo": metrics[f"fairness.{SEX}.equalized_odds_difference"],
            "eo_upper": intervals[f"fairness.{SEX}.equalized_odds_difference"][1]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--zoo", type=Path, help="folder of checkpoints to reuse and write (default: temporary)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as scratch:
        folder = args.zoo or Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        test, validation = audit.load_dataset("adult", "test"), audit.load_dataset("adult", "validation")
        rows, baseline = [], None
        for name in FAIR:
            model, seconds = trained(folder, name)
            row = fairness_row(name, model, test, seconds, baseline)
            baseline = row["balanced_accuracy"] if baseline is None else baseline
            rows.append(row)
            if name == "adult-mlp-biased":
                for constraint in ("demographic_parity", "equalized_odds"):
                    start = time.perf_counter()
                    fixed, _ = with_thresholds(model, validation, column=SEX, constraint=constraint)
                    rows.append(fairness_row(f"thresholds ({constraint})", fixed, test,
                                             time.perf_counter() - start, baseline))
        print(f"{'method':34} {'time s':>7} {'bal.acc':>8} {'loss':>6} {'DP':>6} {'DP up':>6} {'EO':>6} {'EO up':>6}")
        for r in rows:
            print(f"{r['method']:34} {r['seconds']:7.1f} {r['balanced_accuracy']:8.4f} {r['loss']:6.3f} "
                  f"{r['dp']:6.3f} {r['dp_upper']:6.3f} {r['eo']:6.3f} {r['eo_upper']:6.3f}")
        digits = audit.load_dataset("digits", "test")
        print(f"\n{'model':20} {'time s':>7} {'clean acc':>9} {'PGD ratio':>9} {'sanity':>6}")
        for name in ROBUST:
            model, seconds = trained(folder, name)
            metrics = audit.run(model, digits, ["robustness"]).metrics
            print(f"{name:20} {seconds:7.1f} {metrics['robustness.clean_accuracy']:9.4f} "
                  f"{metrics['robustness.pgd_accuracy_ratio']:9.4f} {metrics['robustness.sanity_passed']:6.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
