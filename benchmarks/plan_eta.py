"""How well the plan made before an audit predicts its time: planned against actual seconds, per step and in all.

    python benchmarks/plan_eta.py [--quick] [--cases adult-mlp digits-cnn reviews-lstm cnn64] [--samples N]
                                  [--models DIR]

The reference models audit their test splits with the default analyzers; cnn64 is benchmarks/real_models.py's
ResNet-18 on 3x64x64 images (--quick: its small stand-in). Each line gives a step's planned and actual seconds
and their ratio (actual / planned: above 1, the plan was short). A shared 2-core machine is noisy: the probe
measures the load when the plan is made, not what it becomes.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import audit
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the small stand-in of cnn64")
    parser.add_argument("--cases", nargs="+", default=[*REFERENCE, "cnn64"])
    parser.add_argument("--samples", type=int, help="every per-example analyzer's samples (default: its own)")
    parser.add_argument("--models", type=Path, default=ROOT / "models", help="where the reference checkpoints are")
    args = parser.parse_args()
    ratios = {}
    for name in args.cases:
        model, data = case(name, args.quick, args.models)
        began = time.perf_counter()
        run = audit.run(model, data, seed=0, samples=args.samples)
        ratios[name] = report(name, run, time.perf_counter() - began)
    print("\nactual / planned: " + ", ".join(f"{name} {ratio:.2f}" for name, ratio in ratios.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
