"""Explanation quality against the saliency it checks, in seconds and in passes, on real-sized models.

    python benchmarks/explanation_cost.py [--sections cnn64 bert6] [--samples N] [--quick]

Runs saliency and then explanation quality on one model object, as a default audit does, on the ResNet-18
of 3x64x64 images (4 examples) and the 6-layer BERT on one 256-subword text (benchmarks/real_models.py
builds both, random weights), and prints each analyzer's seconds, the rows of its forward passes with
gradients (each followed by a backward pass) and without (counted by a hook on the module and its copies),
the sanity table, and the ratio explanation quality / saliency in seconds (the issue's goal: at most 2), in CPU
seconds of the process (which other processes move less) and in rows with gradients (which they do not move).
Run it with PYTHONPATH pointing at two checkouts for before and after, in one session: a shared machine is noisy.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import real_models  # noqa: E402 - the cases live there

import audit  # noqa: E402
from audit.analyzers.explanation_quality.analyzer import ExplanationQuality  # noqa: E402
from audit.analyzers.saliency.analyzer import SaliencyAnalyzer  # noqa: E402


class Counter:
    """Rows through the module's forward passes and its copies' (the cascade's), with gradients (each followed by
    a backward pass) and without. The hook is a plain function: deepcopy shares it (it would copy a bound
    method's object, and the counts with it)."""

    def __init__(self, module: torch.nn.Module):
        counts = self.counts = {True: 0, False: 0}

        def seen(module, args, out):
            counts[torch.is_grad_enabled()] += len(args[0]) if args else 1

        module.register_forward_hook(seen)

    def take(self) -> tuple[int, int]:
        """(rows with gradients, rows without) since the last take."""
        rows = self.counts[True], self.counts[False]
        self.counts.update({True: 0, False: 0})
        return rows


def section(name: str, model, data, samples: int) -> None:
    """Saliency, then explanation quality, on one model object (as a default audit runs them)."""
    counter = Counter(model.module)
    print(f"\n== {name}: {samples} example(s) ==", flush=True)
    seconds, cpu, rows = {}, {}, {}
    for analyzer in (SaliencyAnalyzer(samples=samples), ExplanationQuality(samples=samples)):
        counter.take()
        began, began_cpu = time.perf_counter(), time.process_time()
        result = analyzer.run(model, data, seed=0)
        seconds[analyzer.name] = time.perf_counter() - began
        cpu[analyzer.name] = time.process_time() - began_cpu
        rows[analyzer.name] = counter.take()
        print(f"  {analyzer.name:<20} {seconds[analyzer.name]:8.1f} s ({cpu[analyzer.name]:.1f} s of CPU)  forward "
              f"rows with gradients {rows[analyzer.name][0]}, without {rows[analyzer.name][1]}", flush=True)
        if analyzer.name == "explanation_quality":
            print(result.tables["sanity"].round(3).to_string())
            for key, value in sorted(result.metrics.items()):
                print(f"    {key} = {value:.4f}")
    print(f"  explanation_quality / saliency: {seconds['explanation_quality'] / seconds['saliency']:.2f} in seconds, "
          f"{cpu['explanation_quality'] / cpu['saliency']:.2f} in CPU seconds, "
          f"{rows['explanation_quality'][0] / rows['saliency'][0]:.2f} in rows with gradients")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sections", nargs="+", choices=("cnn64", "bert6"), default=["cnn64", "bert6"])
    parser.add_argument("--samples", type=int, help="examples (default: 4 images, 1 text)")
    parser.add_argument("--quick", action="store_true", help="narrow ResNet on 32x32, 1-layer BERT on 32 tokens")
    args = parser.parse_args()
    print(f"audit from {Path(audit.__file__).parent}, torch threads {torch.get_num_threads()}")
    for name in args.sections:
        if name == "cnn64":
            model, data = real_models.image_case(32 if args.quick else 64, 16 if args.quick else 64,
                                                 8 if args.quick else 64)
            section("ResNet-18 on 3x64x64", model, data, args.samples or 4)
        else:
            model, data = real_models.bert_case(1 if args.quick else 6, 32 if args.quick else 768,
                                                2 if args.quick else 12, 32 if args.quick else 256, 8)
            section("BERT, 6 layers, one 256-subword text", model, data, args.samples or 1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
