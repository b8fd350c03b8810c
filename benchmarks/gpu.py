"""Time benchmarks/real_models.py's sections per analyzer on a CUDA GPU against the CPU, same audit, same seed.

    python benchmarks/gpu.py [--quick] [--sections cnn64 cnn224 bert6] [--samples N] [--threads N]

Each section builds real_models.py's model and data (random weights: timing only), runs the full default
audit (`audit.run(..., device=...)`; bert6 without SHAP and LIME, as there) once on the CPU and once on
`cuda`, and prints the seconds of every analyzer on each, the ratio CPU/GPU, and the largest difference of
any headline metric between the two runs (a GPU rounds differently: small, not zero). The GPU's first
pass includes its start-up (kernels, cuDNN's search), as a user's first audit does. Without CUDA it says
so in one line and exits 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from real_models import bert_case, image_case, timed  # noqa: E402

import audit  # noqa: E402

SECTIONS = ("cnn64", "cnn224", "bert6")


def case(name: str, quick: bool):
    """(model, data, analyzers skipped) of real_models.py's section `name` (its --quick sizes when `quick`)."""
    if name == "cnn64":
        return (*image_case(32 if quick else 64, 16 if quick else 64, 8 if quick else 64), ())
    if name == "cnn224":
        return (*image_case(32 if quick else 224, 16 if quick else 32, 8 if quick else 64), ())
    return (*bert_case(1 if quick else 6, 32 if quick else 768, 2 if quick else 12, 32 if quick else 256, 8),
            ("shap", "lime"))


def timings(model, data, samples: int, skip: tuple[str, ...], device: str) -> tuple[float, audit.AuditRun]:
    names = [a for a in audit.ANALYZERS.defaults() if a not in skip] if skip else None
    seconds, run = timed(lambda: audit.run(model, data, names, seed=0, samples=samples, device=device))
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return seconds, run


def section(name: str, samples: int, quick: bool) -> None:
    model, data, skip = case(name, quick)
    print(f"\n== {name}: {model.module_name} on {len(data)} {data.modality} rows, samples={samples}"
          f"{' without ' + ', '.join(skip) if skip else ''} ==")
    cpu_total, cpu = timings(model, data, samples, skip, "cpu")
    gpu_total, gpu = timings(model, data, samples, skip, "cuda")
    print(f"  {'analyzer':<20} {'cpu (s)':>9} {'cuda (s)':>9} {'cpu/cuda':>9}")
    for result in cpu.results:
        a, b = cpu.provenance["timings"][result.analyzer], gpu.provenance["timings"][result.analyzer]
        status = {r.analyzer: r.status for r in gpu.results}[result.analyzer]
        note = "" if result.status == status == "ok" else f"  (cpu {result.status}, cuda {status})"
        ratio = f"{a / b:9.1f}" if b > 1e-3 else f"{'-':>9}"
        print(f"  {result.analyzer:<20} {a:9.2f} {b:9.2f} {ratio}{note}")
    print(f"  {'whole audit':<20} {cpu_total:9.2f} {gpu_total:9.2f} {cpu_total / max(gpu_total, 1e-9):9.1f}")
    on_gpu = {k: v for r in gpu.results for k, v in r.metrics.items()}
    gaps = {k: abs(v - on_gpu[k]) for r in cpu.results for k, v in r.metrics.items()
            if k in on_gpu and v == v and on_gpu[k] == on_gpu[k]}
    if gaps:
        worst = max(gaps, key=gaps.get)
        print(f"  largest metric difference cpu - cuda: {gaps[worst]:.3g} ({worst}, of {len(gaps)} metrics)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="real_models.py's smoke sizes")
    parser.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    parser.add_argument("--samples", type=int, help="examples per per-example analyzer (default: as real_models.py)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="CPU threads for the CPU run")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print(f"benchmarks/gpu.py: CUDA is not available (torch {torch.__version__} sees no GPU)", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    print(f"{torch.cuda.get_device_name()} against {args.threads} CPU threads"
          f"{'  (quick smoke run: not the sizes the sections name)' if args.quick else ''}")
    for name in args.sections:
        default = 4 if name == "cnn64" else 1
        section(name, args.samples or (1 if args.quick else default), args.quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())
