"""Speed of our FGSM, PGD and Square against torchattacks and ART on the same work, and of the text attacks.

    python benchmarks/robustness.py [--repeats 5] [--threads N]

Work: 1,000 digits images (the first 1,000 of the "all" split), a CNN trained here for a
few epochs, L-inf epsilon 0.1, PGD with 10 steps of 0.025 and a random start, all in
batches of 512 (ART at its default batch of 32 is shown on its own, labelled). Times
are medians over the repeats after one warm-up call, wall clock on this machine's CPU (or GPU when present);
on a shared machine they are noisy, so read the ratios rather than the seconds.
torchattacks and ART are benchmark-only dependencies, never imported by `audit`.

Square and the robust accuracy over attacks: the first 300 of those images at the same
epsilon, our Square (1,000 queries, the analyzer's default) against torchattacks' Square
(1,000 and AutoAttack's 5,000 queries) and APGD-T (AutoAttack's 100 steps, 9 target
classes), and the analyzer's robust accuracy (FGSM, PGD, then Square on what they left).
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
from torch import nn

import audit
from audit.models.training import TrainConfig, train
from audit.robustness.attacks import PGD, fgsm, pgd
from audit.robustness.domain import input_domain
from audit.robustness.square import square_attack
from audit.robustness.text_attacks import typo_attack, word_substitution

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

    def all_attacks() -> np.ndarray:
        """The analyzer's per-example minimum: FGSM, PGD (20 steps), then Square on what both left."""
        ok = correct(x) & correct(fgsm(model, x, y, EPS, domain)) & correct(pgd(model, x, y, EPS, domain))
        left = np.flatnonzero(ok)
        found = square_attack(model, x[left], y[left], EPS, domain, queries=QUERIES)
        ok[left] = (model.logits(found).argmax(1) == y[left]).numpy()
        return ok

    runs = {
        ("Square", f"audit ({QUERIES} queries)"): lambda: correct(square_attack(model, x, y, EPS, domain,
                                                                                queries=QUERIES)),
        ("Square", f"torchattacks ({QUERIES} queries)"): lambda: correct(
            torchattacks.Square(model.module, eps=EPS, n_queries=QUERIES, seed=0)(xd, yd)),
        ("Square", "torchattacks (5000 queries)"): lambda: correct(
            torchattacks.Square(model.module, eps=EPS, n_queries=5000, seed=0)(xd, yd)),
        ("APGD-T", "torchattacks (100 steps)"): lambda: correct(
            torchattacks.APGDT(model.module, eps=EPS, steps=100, n_classes=len(model.classes), seed=0)(xd, yd)),
        ("all", "audit (FGSM, PGD, Square)"): all_attacks,
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = "cuda" if torch.cuda.is_available() else f"cpu, {torch.get_num_threads()} threads"
    print(f"robustness benchmark ({device}); medians of {args.repeats} runs; shared machine: timings are noisy\n")

    rows, model, x, y, domain = image_rows(args.repeats)
    ours = {attack: seconds for attack, tool, seconds, _ in rows if tool == "audit"}
    print(f"{N} digits images, L-inf eps {EPS}, PGD {STEPS} steps of {ALPHA}, random start, batch {BATCH}")
    print(f"{'attack':<6} {'tool':<24} {'seconds':>9} {'robust acc':>11} {'their time / ours':>18}")
    for attack, tool, seconds, acc in rows:
        ratio = "" if tool == "audit" else f"{seconds / ours[attack]:.2f}x"
        print(f"{attack:<6} {tool:<24} {seconds:>9.3f} {acc:>11.3f} {ratio:>18}")

    rows = square_rows(model, x, y, domain, max(1, args.repeats // 5))
    base = next(seconds for attack, tool, seconds, _ in rows if attack == "Square")
    print(f"\n{SQUARE_N} of those images, L-inf eps {EPS}: Square, APGD-T and the analyzer's minimum over attacks")
    print(f"{'attack':<7} {'tool':<30} {'seconds':>9} {'robust acc':>11} {'time / our Square':>18}")
    for attack, tool, seconds, acc in rows:
        print(f"{attack:<7} {tool:<30} {seconds:>9.3f} {acc:>11.3f} {seconds / base:>17.2f}x")

    print("\ntext attacks on a reviews LSTM (correctly classified test texts)")
    print(f"{'attack':<20} {'ms / example':>13} {'success rate':>13} {'texts':>6}")
    for name, per_example, success, n in text_rows(args.repeats):
        print(f"{name:<20} {per_example * 1000:>13.1f} {success:>13.3f} {n:>6}")


if __name__ == "__main__":
    main()
