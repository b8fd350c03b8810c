"""Time a full default audit (every analyzer that applies) of each reference model.

    python benchmarks/full_audit.py [--specs models/digits-cnn.toml ...] [--threads N]

Trains a reference model from its spec when its checkpoint is missing, then prints the
time per analyzer and per model. Goal: at most 60 s per model on 2 cores.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

import audit
from audit.cli import main as cli_main
from audit.io.locate import audit_data
from audit.models.spec import ModelSpec

ROOT = Path(__file__).resolve().parents[1]
SPECS = ["digits-cnn", "adult-mlp", "compas-mlp", "reviews-lstm", "reviews-transformer"]
GOAL_SECONDS = 60.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--specs", nargs="+", default=[str(ROOT / "models" / f"{s}.toml") for s in SPECS])
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch threads: {args.threads}")
    rows = []
    for spec_path in args.specs:
        spec = ModelSpec.from_toml(spec_path)
        if not spec.output.is_file():
            print(f"training {spec_path} ...", flush=True)
            if cli_main(["train", spec_path, "--quiet"]) != 0:
                return 1
        model = audit.load_model(spec.output)
        data = audit_data(dict(model.task.dataset))
        start = time.perf_counter()
        run = audit.run(model, data, seed=0)
        total = time.perf_counter() - start
        timings = {r.analyzer: (r.seconds, r.status) for r in run.results}
        rows.append((spec.output.stem, len(data), total, timings))
    analyzers = list(dict.fromkeys(a for row in rows for a in row[3]))
    header = ["model", "rows", *analyzers, "total (s)", "goal"]
    table = [header]
    for name, n, total, timings in rows:
        cells = [f"{timings[a][0]:.1f}" + ("" if timings[a][1] == "ok" else f" ({timings[a][1]})")
                 if a in timings else "-" for a in analyzers]
        table.append([name, str(n), *cells, f"{total:.1f}", "ok" if total <= GOAL_SECONDS else "OVER"])
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    for row in table:
        print("  ".join(c.rjust(w) for c, w in zip(row, widths)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
