"""Explanation quality against the saliency it checks, in seconds and in passes, on real-sized models.

    python benchmarks/explanation_cost.py [--sections cnn64 bert6] [--samples N] [--quick]

Runs `audit.run(model, data, ["saliency", "explanation_quality"])` on the ResNet-18 of 3x64x64 images
(4 examples) and the 6-layer BERT on one 256-subword text (benchmarks/real_models.py builds both, random
weights) and prints each analyzer's seconds, its forward rows and backward passes (counted by hooks on the
module), and the ratio explanation quality / saliency; the issue's goal is at most 2. Run it with
PYTHONPATH pointing at two checkouts for before and after, in one session: a shared machine is noisy.
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


class Counter:
    """Rows through the module's forward and backward passes through its top module, while active."""

    def __init__(self, module: torch.nn.Module):
        self.rows = self.backward = 0
        module.register_forward_hook(self._forward)
        module.register_full_backward_hook(self._backward)

    def _forward(self, module, args, out):
        self.rows += len(out[0] if isinstance(out, tuple) else getattr(out, "logits", out))

    def _backward(self, module, grad_in, grad_out):
        self.backward += 1


def section(name: str, model, data, samples: int) -> None:
    counter = Counter(model.module)
    print(f"\n== {name}: {samples} example(s) ==", flush=True)
    seconds = {}
    for analyzer in ("saliency", "explanation_quality"):
        counter.rows = counter.backward = 0
        began = time.perf_counter()
        run = audit.run(model, data, [analyzer] if analyzer == "saliency" else ["saliency", analyzer],
                        seed=0, samples=samples)
        result = run.results[-1]
        seconds[analyzer] = run.provenance["timings"][analyzer]
        if analyzer != "saliency":
            counter_note = "(with saliency before it in the same run)"
        else:
            counter_note = ""
        print(f"  {analyzer:<20} {seconds[analyzer]:8.1f} s  status {result.status}  "
              f"forward rows {counter.rows}  backward passes {counter.backward}  "
              f"(whole call {time.perf_counter() - began:.1f} s) {counter_note}", flush=True)
        if analyzer == "explanation_quality":
            for key, value in sorted(result.metrics.items()):
                print(f"    {key} = {value:.4f}")
    print(f"  explanation_quality / saliency: {seconds['explanation_quality'] / seconds['saliency']:.2f}")


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
