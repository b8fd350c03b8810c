"""The full default JSON of every reference model, written once per version and compared.

    python benchmarks/same_outputs.py write DIR      # train missing checkpoints, audit each, DIR/<model>.json
    python benchmarks/same_outputs.py compare BEFORE AFTER

`write` runs `audit report` (the command line, so any version of the package can be measured)
on each reference model with its own test split and seed 0. `compare` checks that metrics,
intervals and tables are equal (to 1e-9) and lists every finding and verdict that differs,
so a restructuring shows that it changed the judgement only where it meant to. Exit 1 when
a number differs.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SPECS = ["adult-mlp", "adult-mlp-biased", "compas-mlp", "digits-cnn", "digits-cnn-fragile", "reviews-lstm",
         "reviews-transformer"]
TOLERANCE = 1e-9


def write(folder: Path) -> int:
    folder.mkdir(parents=True, exist_ok=True)
    for name in SPECS:
        checkpoint = ROOT / "models" / f"{name}.pt"
        if not checkpoint.is_file():
            subprocess.run(["audit", "train", str(ROOT / "models" / f"{name}.toml"), "--quiet"], check=True)
        done = subprocess.run(["audit", "report", str(checkpoint), "--quiet", "-o", str(folder / f"{name}.html"),
                               "--json", str(folder / f"{name}.json"), "--markdown", str(folder / f"{name}.md")],
                              capture_output=True, text=True)
        (folder / f"{name}.stdout").write_text(done.stdout + done.stderr)
        print(f"{name}: exit {done.returncode}: {done.stdout.splitlines()[0] if done.stdout else done.stderr}",
              flush=True)
    return 0


def _same(a, b) -> bool:
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return a == b or math.isclose(a, b, rel_tol=TOLERANCE, abs_tol=TOLERANCE)
    return a == b


def _numbers(doc: dict) -> dict:
    return {"metrics": doc["metrics"], "intervals": doc["intervals"],
            "tables": {name: r["tables"] for name, r in doc["results"].items()}}


def compare(before: Path, after: Path) -> int:
    differ = 0
    for name in SPECS:
        old, new = (json.loads((d / f"{name}.json").read_text()) for d in (before, after))
        a, b = _numbers(old), _numbers(new)
        for part in a:
            for key in sorted(set(a[part]) | set(b[part])):
                if not _same(a[part].get(key), b[part].get(key)):
                    differ += 1
                    print(f"{name}: {part} {key} differs: {str(a[part].get(key))[:160]} -> "
                          f"{str(b[part].get(key))[:160]}")
        old_findings = {f["sentence"] for f in old["verdict"]["findings"]}
        new_findings = {f["sentence"] for f in new["verdict"]["findings"]}
        for sentence in sorted(old_findings - new_findings):
            print(f"{name}: finding gone: {sentence}")
        for sentence in sorted(new_findings - old_findings):
            print(f"{name}: finding new:  {sentence}")
        if old["verdict"]["summary"] != new["verdict"]["summary"]:
            print(f"{name}: verdict {old['verdict']['summary']!r} -> {new['verdict']['summary']!r}")
    print(f"{differ} numbers differ" if differ else "metrics, intervals and tables equal")
    return 1 if differ else 0


if __name__ == "__main__":
    command, *folders = sys.argv[1:]
    sys.exit(write(Path(folders[0])) if command == "write" else compare(*map(Path, folders)))
