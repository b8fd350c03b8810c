"""Start-up time of the command: `audit --help` and `audit --version` beside `python -c "pass"` (the floor).

    python benchmarks/startup.py [RUNS]

Each is run RUNS times (default 7) in a fresh process; the median wall time is printed. The goal is under
0.5 s on a quiet machine: the help imports no torch, numpy, pandas or scikit-learn.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = {
    'python -c "pass"': [sys.executable, "-c", "pass"],
    "audit --help": [sys.executable, "-m", "audit", "--help"],
    "audit report --help": [sys.executable, "-m", "audit", "report", "--help"],
    "audit --version": [sys.executable, "-m", "audit", "--version"],
}


def median_seconds(command: list[str], runs: int) -> float:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(command, env=env, stdout=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(runs: int = 7) -> None:
    width = max(map(len, COMMANDS))
    for name, command in COMMANDS.items():
        print(f"{name:<{width}}  {median_seconds(command, runs):.3f} s (median of {runs})")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 7)
