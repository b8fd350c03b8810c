"""The Ray engine against the local one on this machine: per-task overhead, the prediction map, a full audit.

    python benchmarks/ray_engine.py [--cpus N] [--rows N] [--model models/adult-mlp.toml]

Prints, with a local Ray of `--cpus` CPUs (started here, after the local runs):
- Ray's start-up time;
- the overhead of a task: a map of empty batches, and of small prediction batches (16 rows),
  per task over what the local engine takes for the same batches;
- the prediction map (`Model.predict_proba`) over `--rows` table rows, in rows per second;
- a full default audit of the reference model on its test split, on either engine (each on a fresh copy
  of the model, after a warm-up audit of 200 rows), checking that the metrics are the same to the last digit.
The numbers feed the cluster estimate in the Ray notes (time = start-up + tasks x overhead / workers
+ rows x per-row cost / cores).
"""

from __future__ import annotations

import argparse
import copy
import math
import os
import time
from pathlib import Path

import ray
import torch

import audit
from audit.cli import main as cli_main
from audit.io.locate import audit_data
from audit.engine import LocalEngine, using
from audit.core.model import FORWARDS_PER_TASK, logits_batch
from audit.models.spec import ModelSpec
from audit.engine.ray import RayEngine

ROOT = Path(__file__).resolve().parents[1]


def nothing(shared, batch):
    return None


def timed(fn) -> tuple[float, object]:
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(a[k] == b[k] or (math.isnan(a[k]) and math.isnan(b[k])) for k in a)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray (default 2)")
    parser.add_argument("--rows", type=int, default=1_000_000, help="table rows of the prediction map")
    parser.add_argument("--tasks", type=int, default=400, help="tasks of the overhead maps")
    parser.add_argument("--model", default=str(ROOT / "models" / "adult-mlp.toml"))
    args = parser.parse_args()
    torch.set_num_threads(1)  # one thread per task, as on a cluster; the local engine gets the same
    spec = ModelSpec.from_toml(args.model)
    if not spec.output.is_file():
        print(f"training {args.model} ...", flush=True)
        if cli_main(["train", args.model, "--quiet"]) != 0:
            return 1
    model = audit.load_model(spec.output)
    data = audit_data(dict(model.task.dataset))
    x = model.encode(data)
    big = x[torch.arange(args.rows) % len(x)]
    small = [big[i * 16 : i * 16 + 16] for i in range(args.tasks)]

    local = {}
    local["empty"], _ = timed(lambda: list(LocalEngine().map(nothing, model, range(args.tasks))))
    local["small"], _ = timed(lambda: list(LocalEngine().map(logits_batch, (model, model.batch_size), small)))
    local["predict"], _ = timed(lambda: model.proba(big))
    audit.run(copy.copy(model), data.sample(200, seed=0), seed=0, engine="local")  # imports and caches warm
    local["audit"], local_run = timed(lambda: audit.run(copy.copy(model), data, seed=0, engine="local"))

    startup, _ = timed(lambda: ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False))
    engine = RayEngine()
    list(engine.map(nothing, model, range(4 * args.cpus)))  # start the workers
    remote = {}
    remote["empty"], _ = timed(lambda: list(engine.map(nothing, model, range(args.tasks))))
    remote["small"], _ = timed(lambda: list(engine.map(logits_batch, (model, model.batch_size), small)))
    with using(engine):
        remote["predict"], _ = timed(lambda: model.proba(big))
    before = sum(engine.tasks.values())
    remote["audit"], ray_run = timed(lambda: audit.run(copy.copy(model), data, seed=0, engine=engine))
    audit_tasks = sum(engine.tasks.values()) - before
    ray.shutdown()

    batches = math.ceil(args.rows / (model.batch_size * FORWARDS_PER_TASK))
    parameters = sum(p.numel() for p in model.module.parameters())
    print(f"model {spec.output.name} ({parameters:,} parameters), torch threads 1, local Ray of {args.cpus} CPUs "
          f"on a machine of {len(os.sched_getaffinity(0))}")
    print(f"Ray start-up: {startup:.2f} s")
    for name, label in (("empty", "empty tasks"), ("small", "16-row prediction tasks")):
        per_local, per_ray = local[name] * 1e3 / args.tasks, remote[name] * 1e3 / args.tasks
        print(f"{label:28s} local {per_local:7.3f} ms/batch  Ray {per_ray:7.3f} ms/task  overhead "
              f"{per_ray - per_local:7.3f} ms/task (wall, {args.cpus} workers)")
    print(f"prediction map, {args.rows:,} rows in {batches} tasks of {FORWARDS_PER_TASK} x {model.batch_size}: "
          f"local {args.rows / local['predict']:,.0f} rows/s ({local['predict']:.2f} s)  "
          f"Ray {args.rows / remote['predict']:,.0f} rows/s ({remote['predict']:.2f} s)")
    print(f"full default audit of {spec.output.stem} on {len(data):,} rows: local {local['audit']:.1f} s  Ray "
          f"{remote['audit']:.1f} s  ({audit_tasks} Ray tasks; "
          f"metrics identical: {same(local_run.metrics, ray_run.metrics)})")
    for r_local, r_ray in zip(local_run.results, ray_run.results):
        status = "" if r_local.status == r_ray.status == "ok" else f"  ({r_local.status}, {r_ray.status})"
        print(f"  {r_local.analyzer:20s} local {r_local.seconds:6.1f} s  Ray {r_ray.seconds:6.1f} s{status}")
    return 0 if same(local_run.metrics, ray_run.metrics) else 1


if __name__ == "__main__":
    raise SystemExit(main())
