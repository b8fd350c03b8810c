"""How well the plan made before an audit predicts its time: planned against actual seconds, per step and in all.

    python benchmarks/plan_eta.py [--quick] [--cases adult-mlp digits-cnn reviews-lstm cnn64] [--samples N]
                                  [--models DIR] [--budget 2m 1m]

The reference models audit their test splits with the default analyzers; cnn64 is benchmarks/real_models.py's
ResNet-18 on 3x64x64 images (--quick: its small stand-in). Each line gives a step's planned and actual seconds
and their ratio (actual / planned: above 1, the plan was short). A shared 2-core machine is noisy: the probe
measures the load when the plan is made, not what it becomes.

With --budget, each case also runs within each budget given (after the run without one, on the same machine):
its wall time against the budget (the acceptance: at most the budget + 10%), and per analyzer the examples planned
and used, why it stopped and how much wider its intervals are than planned, and what the plan before the work cut.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import audit
from audit._util.durations import parse_duration
from audit.io.locate import audit_data

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
REFERENCE = ("adult-mlp", "digits-cnn", "reviews-lstm")


def case(name: str, quick: bool, models: Path):
    if name == "cnn64":
        from real_models import image_case

        return image_case(32, 16, 8) if quick else image_case(64, 64, 64)
    model = audit.load_model(models / f"{name}.pt")
    return model, audit_data(dict(model.task.dataset), classes=model.classes)


def report(name: str, run: audit.AuditRun, wall: float) -> float:
    plan = run.provenance["plan"]
    print(f"\n== {name}: planned {plan['seconds']:.1f} s, took {wall:.1f} s (actual / planned "
          f"{wall / plan['seconds']:.2f}; load at the probe {plan['load']:.1f}) ==")
    for step, entry in plan["steps"].items():
        actual = entry.get("actual_seconds")
        ratio = f"{actual / entry['planned_seconds']:6.2f}" if actual and entry["planned_seconds"] else "     -"
        shown = f"{actual:8.1f}" if actual is not None else "       -"
        print(f"  {step:<20} planned {entry['planned_seconds']:8.1f} s  actual {shown} s  ratio {ratio}")
    return wall / plan["seconds"]


def report_budget(name: str, budget: str, run: audit.AuditRun, wall: float) -> float:
    plan, seconds = run.provenance["plan"], parse_duration(budget)
    print(f"\n== {name} --budget {budget}: took {wall:.1f} s, {wall / seconds:.2f} of the budget "
          f"({'within' if wall <= 1.1 * seconds else 'OVER'} the budget + 10%); planned {plan['seconds']:.1f} s ==")
    for step, entry in plan["steps"].items():
        used, cut = entry.get("examples"), entry.get("cut")
        actual = entry.get("actual_seconds")
        line = f"  {step:<20} planned {entry['planned_seconds']:7.1f} s  actual " + \
               (f"{actual:7.1f} s" if actual is not None else "      - s")
        if used:
            line += (f"  examples {used['used']} of {used['planned']} planned, stopped: {used['stopped']}, "
                     f"intervals {used['interval_widening']:.2f}x as wide as planned")
        if "rounds" in entry:
            line += f"  rounds {[n for n, _ in entry['rounds']]}"
        print(line + (f"\n  {'':<20} cut before the work: {cut}" if cut else ""))
    return wall / seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the small stand-in of cnn64")
    parser.add_argument("--cases", nargs="+", default=[*REFERENCE, "cnn64"])
    parser.add_argument("--samples", type=int, help="every per-example analyzer's samples (default: its own)")
    parser.add_argument("--models", type=Path, default=ROOT / "models", help="where the reference checkpoints are")
    parser.add_argument("--budget", nargs="+", default=[], metavar="TIME",
                        help="also run each case within each of these budgets, e.g. 2m 1m")
    parser.add_argument("--no-unlimited", action="store_true", help="with --budget: skip the run without a budget")
    args = parser.parse_args()
    ratios, budgets = {}, {}
    for name in args.cases:
        model, data = case(name, args.quick, args.models)
        if not (args.budget and args.no_unlimited):
            began = time.perf_counter()
            run = audit.run(model, data, seed=0, samples=args.samples)
            ratios[name] = report(name, run, time.perf_counter() - began)
        for budget in args.budget:
            began = time.perf_counter()
            run = audit.run(model, data, seed=0, samples=args.samples, budget=budget)
            budgets[f"{name} {budget}"] = report_budget(name, budget, run, time.perf_counter() - began)
    if ratios:
        print("\nactual / planned: " + ", ".join(f"{name} {ratio:.2f}" for name, ratio in ratios.items()))
    if budgets:
        print("wall / budget: " + ", ".join(f"{name} {ratio:.2f}" for name, ratio in budgets.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
