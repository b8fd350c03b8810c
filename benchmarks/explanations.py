"""Time the explanation analyzers, and our SHAP and LIME against the libraries used directly.

    python benchmarks/explanations.py [--rows 200] [--subset 20] [--threads N] [--repeat 3]

On 200 digits test images (CNN) and 200 adult test rows (MLP), from models/*.pt (trained
from their specs when missing), prints:
1. the time of each registered explanation analyzer with `samples` = rows;
2. our SHAP and LIME against shap and lime called with their default settings on the
   same instances and sample counts (shap's DeepExplainer explains every class; lime's
   image explainer scores 10 images per call), checking that the numbers are equal;
3. each against its floor: the same number of forward evaluations in one big batch
   (SHAP's DeepExplainer also runs a backward pass over them, so its floor is lower).
   Our LIME goes below it: with one seed lime perturbs every table row with the same
   sampled rows, which we score once (rows + samples evaluations, not rows x samples),
   and scores an image's repeated perturbations (those that only hide blank segments)
   once, with channels-last convolutions.
The library defaults are slow: they run on the first `--subset` instances and are
extrapolated to all rows (marked "~"). Timings on a shared machine are noisy: ours and
the library's are each the best of `--repeat` runs.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import time
from pathlib import Path

import numpy as np
import shap  # imported up front: its seconds of import time are in no timing below
import torch
from lime.lime_image import LimeImageExplainer
from lime.lime_tabular import LimeTabularExplainer

import audit
from audit.analyzers import ANALYZERS
from audit.methods.attributions.lime_method import DEFAULT_SAMPLES, TRAINING_ROWS, RawColumns, explain_lime, grid_segments
from audit.methods.attributions.sampling import training_sample
from audit.methods.attributions.shap_method import DEFAULT_BACKGROUND, explain_shap
from audit.cli import main as cli_main
from audit.models.spec import ModelSpec

ROOT = Path(__file__).resolve().parents[1]
CASES = [("digits-cnn", "digits"), ("adult-mlp", "adult")]
ANALYZER_NAMES = ("saliency", "shap", "lime", "explanation_quality")


def timed(fn, repeat: int = 1):
    """(best seconds of `repeat` calls, the last call's result)."""
    best = np.inf
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def load(spec_name: str) -> audit.Model:
    spec = ModelSpec.from_toml(ROOT / "models" / f"{spec_name}.toml")
    if not spec.output.is_file():
        print(f"training {spec_name} ...", flush=True)
        if cli_main(["train", str(ROOT / "models" / f"{spec_name}.toml"), "--quiet"]) != 0:
            raise SystemExit(1)
    return audit.load_model(spec.output)


def forward_floor(model, x: torch.Tensor, evaluations: int) -> float:
    """Seconds for `evaluations` forward passes in one batch (inputs tiled from `x`)."""
    batch = x.repeat((int(np.ceil(evaluations / len(x))),) + (1,) * (x.dim() - 1))[:evaluations].to(model.device)
    with torch.inference_mode():
        model.module(batch[:2])
        seconds, _ = timed(lambda: model.module(batch))
    return seconds


def library_shap(model, x, bg, target) -> np.ndarray:
    """shap's DeepExplainer as documented: every class explained, values per class."""
    values = shap.DeepExplainer(copy.deepcopy(model.module), bg).shap_values(x)
    return np.stack([values[i, ..., c] for i, c in enumerate(target)])


def library_lime(model, data, x, target, *, seed: int) -> np.ndarray:
    """lime as documented (default batch size, classifier_fn = Model.predict_proba), same settings otherwise."""
    weights = []
    if model.modality == "image":
        segments = grid_segments(*x.shape[2:])
        for image, c in zip(x.numpy().astype(np.float64), target):
            explanation = LimeImageExplainer(feature_selection="none", random_state=seed).explain_instance(
                image.transpose(1, 2, 0),
                lambda b: model.predict_proba(torch.tensor(b.transpose(0, 3, 1, 2), dtype=torch.float32)),
                labels=(int(c),), hide_color=model.encoder.low, top_labels=None, num_features=int(segments.max()) + 1,
                num_samples=DEFAULT_SAMPLES, segmentation_fn=lambda _: segments)
            w = dict(explanation.local_exp[int(c)])
            per_pixel = np.array([w[s] for s in range(len(w))]) / (np.bincount(segments.ravel()) * x.shape[1])
            weights.append(per_pixel[segments])
        return np.stack(weights)[:, None]
    columns = RawColumns(model, x.shape[1])
    training, _ = training_sample(model, data, TRAINING_ROWS, seed=seed)
    training = columns.to_raw(model.encode(training).numpy().astype(np.float64))
    for row in columns.to_raw(x.numpy().astype(np.float64)):
        c = int(target[len(weights)])
        explanation = LimeTabularExplainer(
            training, mode="classification", categorical_features=columns.categorical, discretize_continuous=False,
            feature_selection="none", random_state=seed,
        ).explain_instance(row, lambda z: model.predict_proba(torch.from_numpy(columns.to_model(z))), labels=(c,),
                           num_features=len(row), num_samples=DEFAULT_SAMPLES)
        w = dict(explanation.local_exp[c])
        weights.append(columns.weights_to_model(np.array([w[j] for j in range(len(row))]), row))
    return np.stack(weights)


def compare(name, ours_s, lib_s, floor_s, diff, extrapolated):
    mark = "~" if extrapolated else " "
    return [name, f"{ours_s:.2f}", f"{mark}{lib_s:.2f}", f"{mark}{lib_s / ours_s:.1f}x", f"{ours_s / floor_s:.1f}x",
            f"{diff:.1e}"]


def print_table(rows):
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))))
    print()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200)
    parser.add_argument("--subset", type=int, default=20, help="instances the slow library defaults run on")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--repeat", type=int, default=3, help="best of this many runs for ours and the library")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch threads: {args.threads}; timings on a shared machine are noisy (other jobs compete for the cores)\n")
    analyzer_rows = [["model", "rows", *ANALYZER_NAMES]]
    method_rows = [["model / method", "ours (s)", "library (s)", "library/ours", "ours/floor", "max |diff|"]]
    for spec_name, dataset in CASES:
        model = load(spec_name)
        data = audit.load_dataset(dataset, "test").sample(args.rows, seed=0)
        cells = []
        for name in ANALYZER_NAMES:
            if name not in ANALYZERS:
                cells.append("not registered")
                continue
            options = {"samples": args.rows} if "samples" in {f for f in ANALYZERS.get(name).__dataclass_fields__} \
                else {}
            seconds, result = timed(lambda: audit.run(model, data, [ANALYZERS.create(name, **options)]).results[0])
            cells.append(f"{seconds:.2f}" + ("" if result.status == "ok" else f" ({result.status})"))
        analyzer_rows.append([spec_name, str(len(data)), *cells])

        x = model.encode(data)
        k = min(args.subset, len(data))
        # SHAP: DeepExplainer on the target logit vs every class; each row runs 2 x background rows.
        ours_s, ours = timed(lambda: explain_shap(model, data, seed=0), args.repeat)
        bg = model.encode(training_sample(model, data, DEFAULT_BACKGROUND, seed=0)[0])
        lib_s, lib = timed(lambda: library_shap(model, x[:k], bg, ours.target[:k]), args.repeat)
        floor = forward_floor(model, x, 2 * len(bg) * len(x))
        method_rows.append(compare(f"{spec_name} / SHAP ({ours.explainer})", ours_s, lib_s * len(x) / k, floor,
                                   float(np.abs(ours.values[:k] - lib).max()), k < len(x)))
        # LIME: all instances at once (lime_batch) vs lime's defaults per instance.
        ours_s, ours = timed(lambda: explain_lime(model, data, seed=0), args.repeat)
        with contextlib.redirect_stderr(io.StringIO()):  # lime's image explainer always draws a progress bar
            lib_s, lib = timed(lambda: library_lime(model, data, x[:k], ours.target[:k], seed=0),
                               args.repeat)
        floor = forward_floor(model, x, DEFAULT_SAMPLES * len(x))
        method_rows.append(compare(f"{spec_name} / LIME", ours_s, lib_s * len(x) / k, floor,
                                   float(np.abs(ours.values[:k] - lib).max()), k < len(x)))

    print("Explanation analyzers, seconds (samples = rows):")
    print_table(analyzer_rows)
    print(f"SHAP (background {DEFAULT_BACKGROUND}) and LIME ({DEFAULT_SAMPLES} perturbations) on {args.rows} rows; "
          f"library defaults timed on {args.subset} rows and extrapolated (~); best of {args.repeat} runs each. "
          "Floor: the same forward evaluations in one batch; max |diff|: ours against the library's numbers on the "
          "same rows and seed.")
    print_table(method_rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
