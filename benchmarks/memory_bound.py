"""Peak memory of a default audit of a ResNet-18-shaped network, and how far each kind of pass's real peak
exceeds the activation bytes it is sized by.

    python benchmarks/memory_bound.py [--quick] [--rows 500] [--side 64] [--max-memory 2G] [--budget 2m]
                                      [--trained EPOCHS] [--calibrate]

The audit: `audit.run(model, data)` with every default, on `rows` random images 3 x side x side and the
ResNet-18 of benchmarks/real_models.py (BasicBlocks [2, 2, 2, 2], widths 64-512, in-place ReLU, `+=`,
BatchNorm; random weights, or with --trained trained that many epochs on images that carry their class as
a bright corner square), wrapped as a user would (`audit.wrap`, default batch size). Before the
memory budget this case ran saliency in 164 s and was then killed inside SHAP with 24 GB resident. It
prints each analyzer's seconds and the passes the budget shrank, then the peak resident memory (VmHWM).

--calibrate: for each kind of pass (a gradient pass, shap's DeepExplainer and GradientExplainer, an
inference pass), in a fresh process, the growth of the peak resident memory over the bytes the pass
is sized by (`audit.core.passes.activation_bytes` x rows): `PEAK_FACTOR` must stay above it.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
import warnings

import numpy as np
import torch

import audit
from audit._util.memory import peak_resident_bytes, resident_bytes
from audit._util.paths import format_size
from real_models import CLASSES, ResNet18

PASSES = {"gradient": 64, "deep_explainer": 200, "gradient_explainer": 100, "inference": 256}  # rows per pass


def resnet_case(rows: int, side: int, width: int, epochs: int = 0) -> tuple[audit.Model, audit.Dataset]:
    """The network on `rows` noise images of random classes; with `epochs`, each image carries its class as a
    bright square in one of four corners, and the network is trained on them that many epochs first."""
    torch.manual_seed(0)
    net = ResNet18(len(CLASSES), width)
    rng = np.random.default_rng(0)
    x = rng.random((rows, 3, side, side), dtype=np.float32)
    y = rng.integers(0, len(CLASSES), rows)
    if epochs:
        patch = side // 4
        for k, (top, left) in enumerate([(0, 0), (0, side - patch), (side - patch, 0), (side - patch, side - patch)]):
            x[y == k, :, top:top + patch, left:left + patch] = 1.0
        optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
        net.train()
        for _ in range(epochs):
            for batch in np.array_split(rng.permutation(rows), max(1, rows // 32)):
                optimizer.zero_grad()
                loss = torch.nn.functional.cross_entropy(net(torch.from_numpy(x[batch])), torch.from_numpy(y[batch]))
                loss.backward()
                optimizer.step()
    data = audit.Dataset.from_arrays(x, y, classes=CLASSES, name=f"{'patched' if epochs else 'noise'} {side}px")
    return audit.wrap(net.eval(), modality="image", classes=CLASSES, input_shape=(3, side, side)), data


def default_audit(args) -> None:
    model, data = resnet_case(args.rows, args.side, args.width, args.trained)
    print(f"default audit of a ResNet-18 (width {args.width}) on {args.rows} images 3x{args.side}x{args.side}, "
          f"batch size {model.batch_size}; resident before: {format_size(resident_bytes())}", flush=True)
    start = time.perf_counter()
    run = audit.run(model, data, seed=0, max_memory=args.max_memory, budget=args.budget)
    print(f"finished in {time.perf_counter() - start:.0f} s")
    for result in run.results:
        print(f"  {result.analyzer:<20} {result.seconds:7.1f} s  {result.status}"
              + (f": {result.error}" if result.error else ""))
        for warning in result.warnings:
            if "memory budget" in warning:
                print(f"      {warning}")
    print(f"peak resident memory: {format_size(peak_resident_bytes())}")


def calibrate_one(kind: str, rows: int) -> None:
    """One pass of `kind` with `rows` rows after a one-row warm-up: peak growth over the bytes it is sized by."""
    from captum.attr import Saliency

    import audit.methods.attributions.shap_method as shap_method
    from audit.core.passes import activation_bytes

    torch.set_num_threads(1)
    warnings.filterwarnings("ignore", category=UserWarning)  # captum's requires_grad, shap's unknown Sequential
    model, data = resnet_case(max(rows, 20), 64, 64)
    x = model.encode(data)
    per_row = activation_bytes(model, x, backward=kind != "inference")
    background, target = x[:10], np.zeros(len(x), dtype=int)

    def run(n: int) -> int:
        """One pass of about `n` rows; the rows it holds."""
        if kind == "gradient":
            Saliency(model.module).attribute(x[:n].clone(), target=0, abs=True)
            return n
        if kind == "inference":
            with torch.inference_mode():
                model.module(x[:n])
            return n
        if kind == "deep_explainer":
            shap_method.PACKED_ROWS = n
            shared = (shap_method.hookable_copy(model.module, background[:2]), background, model.device,
                      n // (2 * len(background)))
            shap_method.deep_class(shared, (0, x[: n // (2 * len(background))]))
            return n
        shap_method.DEFAULT_GRADIENT_SAMPLES = n
        shap_method._explain_gradient(model, x[:1], target[:1], background, "", seed=0)
        return n

    run(2 * len(background))
    before = peak_resident_bytes()
    held = run(rows)
    growth = peak_resident_bytes() - before
    print(f"  {kind:<20} {held:5d} rows x {format_size(per_row):>9} = {format_size(held * per_row):>9}; "
          f"peak grew {format_size(growth):>9}: {growth / (held * per_row):.2f}x", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 40 images of 32 pixels, width 8")
    parser.add_argument("--rows", type=int, default=500)
    parser.add_argument("--side", type=int, default=64)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--max-memory", help="the budget (default: audit's own)")
    parser.add_argument("--budget", help="the audit's time budget, e.g. 2m (default: none)")
    parser.add_argument("--trained", type=int, default=0, metavar="EPOCHS",
                        help="plant each image's class as a bright corner square and train that many epochs first")
    parser.add_argument("--calibrate", action="store_true", help="measure each kind of pass instead")
    parser.add_argument("--one", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        calibrate_one(args.one[0], int(args.one[1]))
        return 0
    if args.calibrate:
        print("peak growth of one pass over the activation bytes it is sized by (ResNet-18, 3x64x64):")
        for kind, rows in PASSES.items():
            subprocess.run([sys.executable, __file__, "--one", kind, str(rows)], check=True)
        return 0
    if args.quick:
        args.rows, args.side, args.width = 40, 32, 8
    default_audit(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
