"""Speed of our FGSM, PGD and Square against torchattacks and ART on the same work, and of the text attacks;
robust accuracy against torchattacks' AutoAttack.

    python benchmarks/robustness.py [--repeats 5] [--threads N] [--only autoattack] [--cache FILE]

Work: 1,000 digits images (the first 1,000 of the "all" split), a CNN trained here for a
few epochs, L-inf epsilon 0.1, PGD with 10 steps of 0.025 and a random start, all in
batches of 512 (ART at its default batch of 32 is shown on its own, labelled). Times
are medians over the repeats after one warm-up call, wall clock on this machine's CPU (or GPU when present);
on a shared machine they are noisy, so read the ratios rather than the seconds.
torchattacks and ART are benchmark-only dependencies, never imported by `audit`.

AutoAttack: torchattacks' AutoAttack (standard: APGD-CE, APGD-T, FAB-T, Square 5,000 queries)
against the analyzer's attacks at its defaults (FGSM, PGD-20, APGD-CE, APGD-T and Square,
each on what the attacks before it left), L-inf epsilon 0.05, 0.1 and 0.2 in the models'
input units (pixel values in [0, 1], as the analyzer's epsilon), on the first 200 digits test
images: the shipped digits CNNs (models/digits-cnn.pt, models/digits-cnn-fragile.pt), a CNN
on the digits resized to 28x28 (Fashion-MNIST's size) and a CNN trained here with PGD
(epsilon 0.1). AutoAttack takes minutes per model and epsilon: its per-example results are
kept in --cache and reused, so it runs once per model and epsilon. Both are timed in CPU
seconds of this process (one thread by default here), which a loaded machine changes less
than wall-clock time.

ResNet (`--only resnet`): the analyzer at its defaults on benchmarks/real_models.py's ResNet-18 (random
weights, noise images of 4 classes; --side 224 --images 32 is the issue's case), this checkout against an
older one (`--before DIR`: its `audit` on PYTHONPATH, in a subprocess), side by side in one run, one thread
each, so that a shared machine's load falls on both alike (two threads each under load ran 3x slower):
seconds, the robust accuracy at the configured epsilon with its 95% Wilson interval, the median flip epsilon,
and the seconds of each phase (`PHASES`). The faster run ends first and the slower then has the machine to
itself for the rest of its run, so the wall-clock ratio understates the gain under load: the ratio of CPU seconds
of each process (one thread) is shown beside it.

Square and the robust accuracy over attacks: the first 300 of those images at the same
epsilon, our Square (1,000 queries) against torchattacks' Square
(1,000 and AutoAttack's 5,000 queries) and APGD-T (AutoAttack's 100 steps, 9 target
classes), and the analyzer's robust accuracy (FGSM, PGD, APGD-CE, APGD-T, Square).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from torch import nn

import audit
from audit.analyzers.robustness.analyzer import Robustness
from audit.analyzers.robustness.sweep import attack_sweep
from audit.models.training import TrainConfig, train
from audit.methods.robustness.attacks import PGD, fgsm, pgd
from audit.methods.robustness.domain import Domain, input_domain
from audit.methods.robustness.square import square_attack
from audit.methods.robustness.stochastic import voted_correct
from audit.methods.robustness.text_attacks import typo_attack, word_substitution

EPS, STEPS, ALPHA, BATCH, N = 0.1, 10, 0.025, 512, 1000
SQUARE_N, QUERIES = 300, 1000


def timed(fn, repeats: int):
    """Median seconds of `repeats` calls after one warm-up call, and the last output."""
    fn()
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def in_batches(attack, x, y):
    return torch.cat([attack(x[i : i + BATCH], y[i : i + BATCH]) for i in range(0, len(x), BATCH)])


def image_rows(repeats: int) -> list[tuple[str, str, float, float]]:
    import torchattacks
    from art.attacks.evasion import FastGradientMethod, ProjectedGradientDescent
    from art.estimators.classification import PyTorchClassifier

    splits = [audit.load_dataset("digits", s) for s in ("train", "validation", "test")]
    model = train("cnn", *splits, config=TrainConfig(epochs=8, lr=0.002, patience=8), quiet=True).model
    model.batch_size = BATCH
    data = audit.load_dataset("digits", "all").subset(np.arange(N))
    x, y = model.encode(data), torch.from_numpy(model.labels(data))
    domain = input_domain(model, data, x)
    config = PGD(steps=STEPS, step_size=ALPHA / EPS)

    def accuracy(adv) -> float:
        return float((model.logits(torch.as_tensor(adv)).argmax(1) == y).float().mean())

    def art(batch):
        classifier = PyTorchClassifier(model=model.module, loss=nn.CrossEntropyLoss(), input_shape=tuple(x.shape[1:]),
                                       nb_classes=len(model.classes), clip_values=(0.0, 1.0),
                                       device_type="gpu" if model.device.type == "cuda" else "cpu")
        return (FastGradientMethod(classifier, eps=EPS, batch_size=batch),
                ProjectedGradientDescent(classifier, eps=EPS, eps_step=ALPHA, max_iter=STEPS, num_random_init=1,
                                         batch_size=batch, verbose=False))

    art_fgsm, art_pgd = art(BATCH)
    _, art_pgd_default = art(32)
    ta_fgsm = torchattacks.FGSM(model.module, eps=EPS)
    ta_pgd = torchattacks.PGD(model.module, eps=EPS, alpha=ALPHA, steps=STEPS, random_start=True)
    xd, yd = x.to(model.device), y.to(model.device)
    runs = {
        ("FGSM", "audit"): lambda: fgsm(model, x, y, EPS, domain),
        ("FGSM", "torchattacks"): lambda: in_batches(ta_fgsm, xd, yd).cpu(),
        ("FGSM", "ART"): lambda: art_fgsm.generate(x.numpy(), y=y.numpy()),
        ("PGD", "audit"): lambda: pgd(model, x, y, EPS, domain, config=config),
        ("PGD", "torchattacks"): lambda: in_batches(ta_pgd, xd, yd).cpu(),
        ("PGD", "ART"): lambda: art_pgd.generate(x.numpy(), y=y.numpy()),
        ("PGD", "ART (default batch 32)"): lambda: art_pgd_default.generate(x.numpy(), y=y.numpy()),
    }
    rows = []
    for (attack, tool), fn in runs.items():
        seconds, adv = timed(fn, repeats)
        rows.append((attack, tool, seconds, accuracy(adv)))
    return rows, model, x, y, domain


def square_rows(model, x, y, domain, repeats: int) -> list[tuple[str, str, float, float]]:
    import torchattacks

    x, y = x[:SQUARE_N], y[:SQUARE_N]
    xd, yd = x.to(model.device), y.to(model.device)

    def correct(adv) -> np.ndarray:
        return (model.logits(torch.as_tensor(adv).cpu()).argmax(1) == y).numpy()

    runs = {
        ("Square", f"audit ({QUERIES} queries)"): lambda: correct(square_attack(model, x, y, EPS, domain,
                                                                                queries=QUERIES)),
        ("Square", f"torchattacks ({QUERIES} queries)"): lambda: correct(
            torchattacks.Square(model.module, eps=EPS, n_queries=QUERIES, seed=0)(xd, yd)),
        ("Square", "torchattacks (5000 queries)"): lambda: correct(
            torchattacks.Square(model.module, eps=EPS, n_queries=5000, seed=0)(xd, yd)),
        ("APGD-T", "torchattacks (100 steps)"): lambda: correct(
            torchattacks.APGDT(model.module, eps=EPS, steps=100, n_classes=len(model.classes), seed=0)(xd, yd)),
        ("all", "audit (the analyzer's attacks)"): lambda: ours(model, x, y, EPS, Robustness()),
    }
    rows = []
    for (attack, tool), fn in runs.items():
        seconds, ok = timed(fn, repeats)
        rows.append((attack, tool, seconds, float(ok.mean())))
    return rows


def text_rows(repeats: int) -> list[tuple[str, float, float, int]]:
    splits = [audit.load_dataset("reviews", s) for s in ("train", "validation", "test")]
    model = train("lstm", *splits, config=TrainConfig(epochs=3, lr=0.003, patience=3), quiet=True,
                  model_config={"embed_dim": 32, "hidden": 32}).model
    data = audit.load_dataset("reviews", "test").sample(120, seed=0)
    labels = model.labels(data)
    correct = model.predict(data) == labels
    texts = [t for t, ok in zip(data.texts, correct) if ok]
    rows = []
    for name, attack in (("word substitution", word_substitution), ("character typos", typo_attack)):
        seconds, outcome = timed(lambda: attack(model, texts, labels[correct]), repeats)
        rows.append((name, seconds / len(texts), float(outcome.flipped.mean()), len(texts)))
    return rows


# -- robust accuracy against AutoAttack ------------------------------------------------------

AA_N, AA_EPSILONS = 200, (0.05, 0.1, 0.2)


class SmallCNN(nn.Module):
    """Two 3x3 convolutions with max-pooling and a hidden layer: the Fashion-MNIST-sized network."""

    def __init__(self, size: int, num_classes: int = 10):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                                      nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(32 * (size // 4) ** 2, 64), nn.ReLU(),
                                  nn.Linear(64, num_classes))

    def forward(self, x):
        return self.head(self.features(x))


def _digits(split: str, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Digits images in [0, 1], bilinearly resized to size x size (8: as shipped)."""
    data = audit.load_dataset("digits", split)
    x = torch.from_numpy(data.inputs)
    if size != x.shape[-1]:
        x = nn.functional.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    return x, torch.as_tensor(data.labels, dtype=torch.long)


def _fit(module: nn.Module, x, y, *, epochs: int, adversarial_eps: float = 0.0) -> nn.Module:
    """Adam on (x, y), seeded; with `adversarial_eps`, on PGD points (Madry et al.: 7 steps of eps / 4)."""
    torch.manual_seed(0)
    optimizer = torch.optim.Adam(module.parameters(), lr=0.002)
    for _ in range(epochs):
        order = torch.randperm(len(x))
        for start in range(0, len(x), 64):
            xb, yb = x[order[start : start + 64]], y[order[start : start + 64]]
            if adversarial_eps:
                module.eval()
                delta = (torch.rand_like(xb) * 2 - 1) * adversarial_eps
                for _ in range(7):
                    delta.requires_grad_(True)
                    loss = nn.functional.cross_entropy(module((xb + delta).clamp(0, 1)), yb)
                    grad, = torch.autograd.grad(loss, delta)
                    delta = (delta + adversarial_eps / 4 * grad.sign()).clamp(-adversarial_eps, adversarial_eps)
                xb = (xb + delta.detach()).clamp(0, 1)
            module.train()
            optimizer.zero_grad()
            nn.functional.cross_entropy(module(xb), yb).backward()
            optimizer.step()
    return module.eval()


def reference_models() -> dict[str, tuple[audit.Model, torch.Tensor, torch.Tensor]]:
    """The shipped digits CNNs, a 28x28 CNN on digits resized to Fashion-MNIST's size, and a PGD-trained CNN;
    each with the first AA_N test images."""
    models = {}
    x8, y8 = _digits("test", 8)
    for name in ("digits-cnn", "digits-cnn-fragile"):
        try:
            models[name] = (audit.load_model(f"models/{name}.pt"), x8[:AA_N], y8[:AA_N])
        except audit.AuditInputError as exc:
            print(f"skipped {name}: {exc} (train it with: audit train models/{name}.toml)")
    classes = [str(c) for c in range(10)]
    x28, y28 = _digits("train", 28)
    module = _fit(SmallCNN(28), x28, y28, epochs=4)
    x, y = _digits("test", 28)
    models["cnn-28x28"] = (audit.wrap(module, modality="image", classes=classes), x[:AA_N], y[:AA_N])
    xa, ya = _digits("train", 8)
    module = _fit(SmallCNN(8), xa, ya, epochs=15, adversarial_eps=0.1)
    models["cnn-pgd-trained"] = (audit.wrap(module, modality="image", classes=classes), x8[:AA_N], y8[:AA_N])
    return models


def ours(model, x, y, eps: float, options: Robustness) -> np.ndarray:
    """The analyzer's per-example robustness at `eps`: FGSM, PGD, APGD-CE, APGD-T, Square, each on what the
    attacks before it left."""
    one = torch.ones(x.shape[1:])
    domain = Domain(one * 0.0, one, one, one)
    correct = voted_correct(model, x, y, 1)
    attack = PGD(steps=options.steps)
    return attack_sweep(model, x, y, correct, np.array([eps]), domain, attack, options, False, 0, at=0).robust[:, 0]


def autoattack(model, x, y, eps: float) -> np.ndarray:
    import torchattacks

    attack = torchattacks.AutoAttack(model.module, norm="Linf", eps=eps, version="standard",
                                     n_classes=len(model.classes), seed=0)
    return (model.logits(attack(x, y)).argmax(1) == y).numpy()


def autoattack_rows(cache: Path, options: Robustness) -> list[tuple]:
    """Per model and epsilon: AutoAttack's and our robust accuracy and seconds, and the examples
    each calls robust that the other breaks. AutoAttack's results are cached in `cache` (slow)."""
    saved = json.loads(cache.read_text()) if cache.exists() else {}
    rows = []
    for name, (model, x, y) in reference_models().items():
        for eps in AA_EPSILONS:
            key = f"{name}@{eps}"
            if key not in saved:
                start = time.process_time()
                robust = autoattack(model, x, y, eps)
                saved[key] = {"robust": robust.astype(int).tolist(), "seconds": time.process_time() - start,
                              "clean": float(voted_correct(model, x, y, 1).mean())}
                cache.write_text(json.dumps(saved))
            theirs = np.asarray(saved[key]["robust"], dtype=bool)
            start = time.process_time()
            mine = ours(model, x, y, eps, options)
            seconds = time.process_time() - start
            rows.append((name, eps, saved[key]["clean"], theirs.mean(), saved[key]["seconds"], mine.mean(), seconds,
                         int((mine & ~theirs).sum()), int((theirs & ~mine).sum())))
            print(f"  {name} eps {eps}: AutoAttack {theirs.mean():.3f} ({saved[key]['seconds']:.0f} s), "
                  f"ours {mine.mean():.3f} ({seconds:.1f} s)", flush=True)
    return rows


RESNET_RUN = """
import importlib, json, sys, time
sys.path.insert(0, {benchmarks!r})
import audit
from real_models import image_case
from audit.analyzers.robustness.analyzer import Robustness
continuous = importlib.import_module("audit.analyzers.robustness.continuous")
phases = dict.fromkeys({phases!r}, 0.0)
def timed(name, function):
    def run(*args, **kwargs):
        start = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            phases[name] += time.perf_counter() - start
    return run
for name in phases:
    setattr(continuous, name, timed(name, getattr(continuous, name)))
model, data = image_case({side}, {images}, 64)
start, cpu = time.perf_counter(), time.process_time()
result = Robustness(samples={images}).run(model, data, seed=0)
seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
print(json.dumps({{"seconds": seconds, "cpu": cpu, "robust": result.metrics["robustness.robust_accuracy"],
                  "clean": result.metrics["robustness.clean_accuracy"],
                  "flip": result.metrics["robustness.median_flip_epsilon"], "n": {images},
                  "phases": phases, "audit": audit.__file__}}))
"""
#: The analyzer's phases, timed by their functions in audit.analyzers.robustness.continuous (the same names in
#: both checkouts): the randomness check, the sweep (FGSM, PGD, APGD, Square), the flip epsilons' bisection,
#: the corruptions; the rest (clean pass, large-epsilon check, figures) is what is left of the total.
PHASES = {"is_stochastic": "randomness check", "attack_sweep": "sweep", "flip_epsilons": "flip bisection",
          "_corruption_table": "corruptions"}


def resnet_run(checkout: Path, side: int, images: int) -> dict:
    """The analyzer's seconds and numbers on the ResNet case, with `checkout`'s audit, in a subprocess."""
    code = RESNET_RUN.format(benchmarks=str(Path(__file__).resolve().parent), side=side, images=images,
                             phases=list(PHASES))
    env = {**os.environ, "PYTHONPATH": str(checkout), "OMP_NUM_THREADS": "1"}
    # run in the checkout: `python -c` puts the working directory first on sys.path, before PYTHONPATH, so from
    # another checkout both runs would import that one's audit
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True,
                         cwd=checkout)
    return json.loads(out.stdout.strip().splitlines()[-1])


def print_resnet(before: Path, side: int, images: int) -> None:
    from audit.methods.fairness.intervals import wilson

    print(f"robustness analyzer (defaults) on a ResNet-18, {images} noise images 3x{side}x{side}, random weights")
    checkouts = {"before": before, "after": Path(__file__).resolve().parents[1]}
    with ThreadPoolExecutor(2) as pool:
        futures = {name: pool.submit(resnet_run, checkout, side, images) for name, checkout in checkouts.items()}
        runs = {name: future.result() for name, future in futures.items()}
    for name, run in runs.items():
        _, low, high = wilson(round(run["robust"] * run["n"]), run["n"], 1.96)
        print(f"  {name:<6} {run['seconds']:8.1f} s ({run['cpu']:.1f} CPU s)  clean {run['clean']:.3f}  "
              f"robust accuracy {run['robust']:.3f} "
              f"[{float(low):.3f}, {float(high):.3f}]  median flip epsilon {run['flip']:.4g}  ({run['audit']})")
        rest = run["seconds"] - sum(run["phases"].values())
        print("         " + ", ".join(f"{PHASES[name]} {t:.1f} s" for name, t in run["phases"].items())
              + f", rest {rest:.1f} s")
    print(f"  before / after: {runs['before']['seconds'] / runs['after']['seconds']:.1f}x wall clock, "
          f"{runs['before']['cpu'] / runs['after']['cpu']:.1f}x CPU seconds")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: torch's; 1 with --only autoattack)")
    parser.add_argument("--only", choices=("speed", "autoattack", "resnet"), default=None, help="run one part")
    parser.add_argument("--before", type=Path, help="resnet: the older checkout to time against")
    parser.add_argument("--side", type=int, default=224, help="resnet: image side")
    parser.add_argument("--images", type=int, default=32, help="resnet: images attacked")
    parser.add_argument("--cache", type=Path, default=Path("reports/autoattack-cache.json"),
                        help="AutoAttack's per-example results, reused when present")
    args = parser.parse_args()
    if args.threads or args.only == "autoattack":
        torch.set_num_threads(args.threads or 1)
    device = "cuda" if torch.cuda.is_available() else f"cpu, {torch.get_num_threads()} threads"
    print(f"robustness benchmark ({device}); medians of {args.repeats} runs; shared machine: timings are noisy\n")
    if args.only == "resnet":
        if args.before is None:
            parser.error("--only resnet needs --before DIR, the checkout to compare with")
        print_resnet(args.before, args.side, args.images)
        return
    if args.only != "speed":
        print_autoattack(args.cache)
    if args.only != "autoattack":
        print_speed(args.repeats)


def print_autoattack(cache: Path) -> None:
    options = Robustness()
    print(f"robust accuracy on {AA_N} test images: torchattacks AutoAttack (standard) vs ours (FGSM, "
          f"PGD-{options.steps}, APGD-CE and APGD-T {options.apgd_steps} steps, {options.apgd_targets} targets, "
          f"Square {options.square_queries} queries); seconds are CPU seconds")
    rows = autoattack_rows(cache, options)
    print(f"{'model':<20} {'eps':>5} {'clean':>6} {'AutoAttack':>11} {'ours':>6} {'gap (pts)':>10} "
          f"{'AA s':>7} {'ours s':>7} {'time ratio':>10} {'we call robust, AA breaks':>26} {'AA robust, we break':>20}")
    for name, eps, clean, theirs, their_s, mine, my_s, missed, extra in rows:
        print(f"{name:<20} {eps:>5.2f} {clean:>6.3f} {theirs:>11.3f} {mine:>6.3f} {100 * (mine - theirs):>+10.1f} "
              f"{their_s:>7.0f} {my_s:>7.1f} {my_s / their_s:>10.3f} {missed:>26} {extra:>20}")
    print()


def print_speed(repeats: int) -> None:

    rows, model, x, y, domain = image_rows(repeats)
    ours = {attack: seconds for attack, tool, seconds, _ in rows if tool == "audit"}
    print(f"{N} digits images, L-inf eps {EPS}, PGD {STEPS} steps of {ALPHA}, random start, batch {BATCH}")
    print(f"{'attack':<6} {'tool':<24} {'seconds':>9} {'robust acc':>11} {'their time / ours':>18}")
    for attack, tool, seconds, acc in rows:
        ratio = "" if tool == "audit" else f"{seconds / ours[attack]:.2f}x"
        print(f"{attack:<6} {tool:<24} {seconds:>9.3f} {acc:>11.3f} {ratio:>18}")

    rows = square_rows(model, x, y, domain, max(1, repeats // 5))
    base = next(seconds for attack, tool, seconds, _ in rows if attack == "Square")
    print(f"\n{SQUARE_N} of those images, L-inf eps {EPS}: Square, APGD-T and the analyzer's minimum over attacks")
    print(f"{'attack':<7} {'tool':<30} {'seconds':>9} {'robust acc':>11} {'time / our Square':>18}")
    for attack, tool, seconds, acc in rows:
        print(f"{attack:<7} {tool:<30} {seconds:>9.3f} {acc:>11.3f} {seconds / base:>17.2f}x")

    print("\ntext attacks on a reviews LSTM (correctly classified test texts)")
    print(f"{'attack':<20} {'ms / example':>13} {'success rate':>13} {'texts':>6}")
    for name, per_example, success, n in text_rows(repeats):
        print(f"{name:<20} {per_example * 1000:>13.1f} {success:>13.3f} {n:>6}")


if __name__ == "__main__":
    main()
