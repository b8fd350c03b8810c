"""False alarms and misses of the model-randomization sanity check on the sanity zoo.

For each model of tests/sanity_zoo.py trained with each of `--train-seeds` (the MLP, digits
CNN and LSTM are the planted tests' cached models: seed 0 only) and each analyzer seed of
`--seeds` (which examples are explained and how the layers are re-initialized), runs the
check on gradients, integrated gradients and GradientSHAP (sound: a fail is a false alarm) and
on the input itself, an edge detector and, on CNNs, Guided Backprop (insensitive: a pass is a
miss), and prints the rates with the smallest margin to the threshold, per sound method too.

    python benchmarks/sanity_rates.py --seeds 5 --train-seeds 2
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from audit.analyzers.explanation_quality.analyzer import ExplanationQuality
from audit.methods.attributions import registry
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the zoo is the test's
from sanity_zoo import INSENSITIVE, SOUND, ZOO, digits_resnet, rgb_cnn, text_transformer  # noqa: E402

RETRAINABLE = {"resnet": digits_resnet, "rgb_cnn": rgb_cnn, "transformer": text_transformer}
CHECKED = SOUND + ("gradient_shap",)  # the zoo's test leaves GradientSHAP out for time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--train-seeds", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(1)
    for name, fn in INSENSITIVE.items():
        registry._METHODS[name] = registry.AttributionMethod(name, fn, ("tabular", "image", "text"), name)
    check = ExplanationQuality(samples=12, steps=4)
    sound, insensitive = {m: [] for m in CHECKED}, []
    for model_name, (build, data, guided) in ZOO.items():
        methods = CHECKED + ("input_itself", "edge_detector") + (("guided_backprop",) if guided else ())
        train_seeds = range(args.train_seeds) if model_name in RETRAINABLE else [0]
        for train_seed in train_seeds:
            model = RETRAINABLE[model_name](train_seed) if model_name in RETRAINABLE else build()
            for seed in range(args.seeds):
                result = ExplanationQuality(**{**check.config(), "methods": methods}).run(model, data(), seed=seed)
                for method in methods:
                    rho = result.metrics[f"explanations.{method}.randomization_correlation"]
                    (sound[method] if method in CHECKED else insensitive).append(rho)
                    print(f"{model_name:12s} train {train_seed} seed {seed} {method:22s} {rho:+.3f}", flush=True)
    t = check.sanity_threshold
    for method, rhos in sound.items():
        rhos = np.array(rhos)
        print(f"{method}: {np.mean(rhos >= t):.3f} false alarms over {len(rhos)} checks, largest {rhos.max():+.3f}")
    every, insensitive = np.concatenate(list(sound.values())), np.array(insensitive)
    print(f"sound methods: {np.mean(every >= t):.3f} false alarms over {len(every)} checks, largest {every.max():+.3f}")
    print(f"insensitive attributions: {np.mean(insensitive < t):.3f} misses over {len(insensitive)} checks, "
          f"smallest {insensitive.min():+.3f} (threshold {t:g})")


if __name__ == "__main__":
    main()
