"""Time the training of every reference model spec (models/*.toml) against its goal.

    python benchmarks/training.py [--specs models/digits-cnn.toml ...] [--threads N]

Trains each spec into a temporary folder and prints the training time the checkpoint
records, its ratio to the goal (at most 180 s per model on 2 cores) and the test accuracy.
The test suite checks accuracy only: a time depends on the machine and its load.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

import torch

import audit
from audit.cli import main as cli_main
from audit.models.spec import ModelSpec

ROOT = Path(__file__).resolve().parents[1]
GOAL_SECONDS = 180.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--specs", nargs="+", default=[str(p) for p in sorted((ROOT / "models").glob("*.toml"))])
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch threads: {args.threads}; goal: at most {GOAL_SECONDS:.0f} s per model")
    rows = [("model", "train (s)", "ratio to goal", "test accuracy", "goal")]
    with tempfile.TemporaryDirectory() as folder:
        for spec_path in args.specs:
            copy = Path(folder) / Path(spec_path).name
            shutil.copy(spec_path, copy)
            if cli_main(["train", str(copy), "--quiet"]) != 0:
                return 1
            metrics = audit.load_model(ModelSpec.from_toml(copy).output).task.metrics
            seconds = metrics["train_seconds"]
            rows.append((copy.stem, f"{seconds:.1f}", f"{seconds / GOAL_SECONDS:.2f}",
                         f"{metrics['test_accuracy']:.4f}", "ok" if seconds <= GOAL_SECONDS else "OVER"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(c.rjust(w) for c, w in zip(row, widths)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
