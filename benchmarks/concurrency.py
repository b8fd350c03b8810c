"""Two audits started at once against one alone, on this machine: do they slow each other down?

    python benchmarks/concurrency.py [--model models/adult-mlp.pt] [--analyzers performance,robustness]
                                     [--samples 100] [--rounds 2] [--env OMP_NUM_THREADS=1] [-- AUDIT OPTIONS]

Each round runs `python -m audit report` once alone, then twice at the same time, and prints the wall
time of each process, the analyzers' own time (from --json) and the load average when it started.
Goal: each of the two takes at most 3x the time of one alone. OMP_NUM_THREADS, MKL_NUM_THREADS and
AUDIT_THREADS are removed from the environment so that the command's own choice is measured; --env sets
them back for a comparison. Other work on the machine counts: compare rounds run under the same load.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GOAL_RATIO = 3.0
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "AUDIT_THREADS")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(ROOT / "models" / "adult-mlp.pt"))
    parser.add_argument("--analyzers", default="performance,robustness")
    parser.add_argument("--samples", type=int, default=100, help="examples for the per-example analyzers")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("audit_options", nargs="*", help="more options for audit report (after --)")
    args = parser.parse_args()
    if not Path(args.model).is_file():
        print(f"{args.model}: no such checkpoint (audit train models/adult-mlp.toml writes it)", file=sys.stderr)
        return 2
    env = {k: v for k, v in os.environ.items() if k not in THREAD_VARIABLES}
    env.update(dict(item.split("=", 1) for item in args.env))
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
    command = [sys.executable, "-m", "audit", "report", args.model, "--analyzers", args.analyzers,
               "--samples", str(args.samples), "--quiet", *args.audit_options]
    print(f"{' '.join(command[1:])}  ({os.cpu_count()} CPUs, affinity {len(os.sched_getaffinity(0))}, "
          f"{' '.join(args.env) or 'no thread variables'})")
    alone, together = [], []
    with tempfile.TemporaryDirectory() as folder:
        for round_ in range(1, args.rounds + 1):
            alone.append(timed(command, env, Path(folder), 1)[0])
            show(round_, "alone", [alone[-1]])
            together.append(max(timed(command, env, Path(folder), 2), key=lambda r: r["wall"]))
            show(round_, "two at once (slower)", [together[-1]])
    for what in ("wall", "analyzers"):
        a, t = statistics.median(r[what] for r in alone), statistics.median(r[what] for r in together)
        print(f"median {what}: alone {a:.1f} s, two at once {t:.1f} s, ratio {t / a:.2f} (goal <= {GOAL_RATIO})")
    return 0


def timed(command: list[str], env: dict, folder: Path, copies: int) -> list[dict]:
    """Start `copies` audits at once and wait for all; each one's wall and analyzer seconds."""
    load = os.getloadavg()[0]
    start = time.perf_counter()
    procs = []
    for i in range(copies):
        out = folder / f"run{i}"
        log = open(f"{out}.log", "w")  # noqa: SIM115 - closed when the process ends
        procs.append((subprocess.Popen([*command, "-o", f"{out}.html", "--json", f"{out}.json"], env=env,
                                       stdout=subprocess.DEVNULL, stderr=log), out, log))
    walls: dict[int, float] = {}
    while len(walls) < copies:
        for i, (proc, _, _) in enumerate(procs):
            if i not in walls and proc.poll() is not None:
                walls[i] = time.perf_counter() - start
        time.sleep(0.05)
    results = []
    for i, (proc, out, log) in enumerate(procs):
        log.close()
        if proc.returncode not in (0, 1):
            raise SystemExit(f"audit failed (exit {proc.returncode}): {Path(f'{out}.log').read_text()}")
        document = json.loads(Path(f"{out}.json").read_text())
        analyzers = sum(r["seconds"] for r in document["results"].values())
        results.append({"wall": walls[i], "analyzers": analyzers, "load": load})
    return results


def show(round_: int, what: str, results: list[dict]) -> None:
    for r in results:
        print(f"round {round_} {what}: {r['wall']:.1f} s wall, analyzers {r['analyzers']:.1f} s "
              f"(load average {r['load']:.1f} at start)", flush=True)


if __name__ == "__main__":
    sys.exit(main())
