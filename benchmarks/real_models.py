"""Time a full default audit of real-sized models per analyzer, beside captum, shap and lime.

    python benchmarks/real_models.py [--quick] [--sections cnn64 cnn224 tiny-bert bert6 lstm-shap]
                                     [--samples N] [--threads N]

(Progress bars, lime_image's included, go to stderr.)

Sections (random weights: timing only; every input is synthetic or from the shipped reviews):
- cnn64, cnn224: a ResNet-18 (11.2M parameters, BasicBlocks with in-place ReLU and residual adds,
  written here in plain torch) on 3x64x64 and 3x224x224 images of 4 classes, wrapped with
  `audit.wrap(..., modality="image")`;
- tiny-bert, bert6: transformers' BertForSequenceClassification from a BertConfig (2 layers,
  hidden 128; 6 layers, hidden 768, 12 heads) on 256-subword texts (shipped reviews joined), with
  a WordPiece vocabulary learned offline from the reviews (tests/hf_helpers.py: the same on every run;
  tokenizers' trainer breaks ties differently from run to run, and so moved the numbers), through
  `audit.from_transformers`;
- lstm-shap: text SHAP of the reference LSTM (models/reviews-lstm.pt, trained when missing) on
  32 test reviews, ours against shap's PermutationExplainer called directly, with the same work.

Each model section prints the seconds of every analyzer in a full default audit (`audit.run`,
`samples` examples per per-example analyzer, from the run's provenance), then ours against the
library on the same examples: captum (IntegratedGradients or LayerIntegratedGradients for text,
Saliency, Occlusion), shap (DeepExplainer, else GradientExplainer, as shap's image tutorials call
them: every class explained; PermutationExplainer for text) and lime (lime_image and lime_text,
each called per example as their tutorials do), with the ratio ours/library. Where the work
differs (shap's DeepExplainer explains every class, ours only the explained one; lime segments with
quickshift, ours with SLIC) the line says so. A shared 2-core machine is noisy: read the ratios.
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import shap  # imported up front: its seconds of import time are in no timing below
import torch
from captum.attr import IntegratedGradients, LayerIntegratedGradients, Occlusion, Saliency
from lime.lime_image import LimeImageExplainer
from lime.lime_text import LimeTextExplainer
from torch import nn

import audit
from audit.methods.attributions.lime_method import DEFAULT_SAMPLES as LIME_SAMPLES
from audit.methods.attributions.lime_method import explain_lime
from audit.methods.attributions.shap_method import DEFAULT_BACKGROUND, DEFAULT_MAX_EVALS, explain_shap
from audit.cli import main as cli_main
from audit.models.spec import ModelSpec

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from hf_helpers import wordpiece_tokenizer  # noqa: E402  (a WordPiece vocabulary learned from the shipped reviews)
CLASSES = ("a", "b", "c", "d")
IG_STEPS = 50  # captum's default, and ours


def timed(fn):
    """(seconds, result) of one call."""
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


# -- models --------------------------------------------------------------------------------------


class BasicBlock(nn.Module):
    def __init__(self, inputs: int, outputs: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(inputs, outputs, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(outputs)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(outputs, outputs, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(outputs)
        self.shortcut = nn.Sequential()
        if stride != 1 or inputs != outputs:
            self.shortcut = nn.Sequential(nn.Conv2d(inputs, outputs, 1, stride, bias=False), nn.BatchNorm2d(outputs))

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += self.shortcut(x)
        return self.relu(out)


class ResNet18(nn.Module):
    """torchvision's resnet18 layout: a 7x7 stem, four stages of two BasicBlocks, global pooling."""

    def __init__(self, classes: int, width: int = 64):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, width, 7, 2, 3, bias=False), nn.BatchNorm2d(width),
                                  nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1))
        blocks, channels = [], width
        for stage in range(4):
            out = width * 2**stage
            blocks += [BasicBlock(channels, out, 1 if stage == 0 else 2), BasicBlock(out, out, 1)]
            channels = out
        self.blocks = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, classes)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(self.blocks(self.stem(x))), 1))


def image_case(side: int, rows: int, width: int) -> tuple[audit.Model, audit.Dataset]:
    torch.manual_seed(0)
    net = ResNet18(len(CLASSES), width).eval()
    for m in net.modules():  # random running statistics, so the untrained network's outputs differ by class
        if isinstance(m, nn.BatchNorm2d):
            m.running_var.uniform_(0.5, 2.0)
    rng = np.random.default_rng(0)
    x = rng.random((rows, 3, side, side), dtype=np.float32)
    data = audit.Dataset.from_arrays(x, rng.integers(0, len(CLASSES), rows), classes=CLASSES, name=f"noise {side}px")
    model = audit.wrap(net, modality="image", classes=CLASSES, input_shape=(3, side, side), batch_size=64)
    return model, data


def long_texts(tokens: int, rows: int) -> list[str]:
    """`rows` texts of at least `tokens` words: shipped reviews joined end to end."""
    reviews = audit.load_dataset("reviews", "all").texts
    texts, words = [], []
    for review in reviews:
        words += review.split()
        if len(words) >= tokens:
            texts.append(" ".join(words))
            words = []
            if len(texts) == rows:
                return texts
    raise SystemExit(f"the reviews make only {len(texts)} texts of {tokens} words")


def bert_case(layers: int, hidden: int, heads: int, tokens: int, rows: int) -> tuple[audit.Model, audit.Dataset]:
    from transformers import BertConfig, BertForSequenceClassification

    texts = long_texts(tokens, rows)
    tokenizer = wordpiece_tokenizer()  # the same vocabulary on every run, so the same numbers
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=hidden, num_hidden_layers=layers,
                        num_attention_heads=heads, intermediate_size=4 * hidden, max_position_embeddings=tokens,
                        num_labels=2, pad_token_id=tokenizer.pad_token_id, id2label=dict(enumerate(CLASSES[:2])))
    torch.manual_seed(0)
    bert = BertForSequenceClassification(config).eval()
    labels = np.random.default_rng(0).integers(0, 2, rows)
    data = audit.Dataset.from_arrays(texts, labels, classes=CLASSES[:2], modality="text",
                                     name=f"{tokens}-subword reviews")
    return audit.from_transformers(bert, tokenizer, max_length=tokens, batch_size=32), data


def parameters(model: audit.Model) -> str:
    return f"{sum(p.numel() for p in model.module.parameters()) / 1e6:.1f}M parameters"


# -- the audit ------------------------------------------------------------------------------------


def audit_table(model, data, samples: int, skip: tuple[str, ...]) -> audit.AuditRun:
    names = [a for a in audit.ANALYZERS.defaults() if a not in skip] if skip else None
    seconds, run = timed(lambda: audit.run(model, data, names, seed=0, samples=samples))
    print(f"full default audit{' without ' + ', '.join(skip) if skip else ''}: {seconds:.1f} s "
          f"({len(data)} rows, samples={samples})")
    for result in run.results:
        note = "" if result.status == "ok" else f"  ({result.status})"
        print(f"  {result.analyzer:<20} {run.provenance['timings'][result.analyzer]:8.1f} s{note}")
    return run


@dataclass
class Row:
    what: str
    ours: float
    library: float | None
    note: str = ""


def print_rows(rows: list[Row]) -> None:
    width = max(len(r.what) for r in rows)
    print(f"  {'':<{width}}  {'ours (s)':>9}  {'library (s)':>11}  {'ours/library':>12}")
    for r in rows:
        library = "failed" if r.library is None else f"{r.library:.2f}"
        ratio = "-" if r.library is None else f"{r.ours / r.library:.2f}"
        print(f"  {r.what:<{width}}  {r.ours:9.2f}  {library:>11}  {ratio:>12}  {r.note}")


def explained(model, data, samples: int) -> tuple[audit.Dataset, torch.Tensor, np.ndarray]:
    subset = data.subset(np.arange(samples))
    x = model.encode(subset)
    return subset, x, model.predict_proba(subset).argmax(axis=1)


def image_libraries(model, data, samples: int) -> list[Row]:
    subset, x, target = explained(model, data, samples)
    net, t = model.module, torch.as_tensor(target)
    rows = []
    ours, _ = timed(lambda: audit.explain(model, subset, "integrated_gradients", n_steps=IG_STEPS))
    lib, _ = timed(lambda: IntegratedGradients(net).attribute(x, target=t, n_steps=IG_STEPS))
    rows.append(Row("captum IntegratedGradients", ours, lib, f"{IG_STEPS} steps"))
    ours, _ = timed(lambda: audit.explain(model, subset, "saliency"))
    lib, _ = timed(lambda: Saliency(net).attribute(x, target=t))
    rows.append(Row("captum Saliency", ours, lib))
    side = max(2, x.shape[-1] // 8)  # our occlusion window, so both do the same work
    ours, _ = timed(lambda: audit.explain(model, subset, "occlusion"))
    lib, _ = timed(lambda: Occlusion(net).attribute(x, sliding_window_shapes=(3, side, side),
                                                    strides=(3, side // 2, side // 2), baselines=0, target=t))
    rows.append(Row("captum Occlusion", ours, lib, f"{side}px window, stride {side // 2}"))

    background = data.sample(DEFAULT_BACKGROUND, seed=1)
    bg = model.encode(background)
    ours, mine = timed(lambda: explain_shap(model, subset, seed=0, background=bg))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            lib, _ = timed(lambda: shap.DeepExplainer(copy.deepcopy(net), bg).shap_values(x))
        name = "shap DeepExplainer"
    except Exception as exc:  # noqa: BLE001 - shap fails on some layers; the tutorials' fallback
        print(f"  shap's DeepExplainer failed ({type(exc).__name__}: {str(exc)[:80]}); GradientExplainer instead")
        lib, _ = timed(lambda: shap.GradientExplainer(copy.deepcopy(net), bg).shap_values(x))
        name = "shap GradientExplainer"
    rows.append(Row(name, ours, lib, f"background {len(bg)}; ours: {mine.explainer}, explained class only"))

    ours, _ = timed(lambda: explain_lime(model, subset, seed=0, num_samples=LIME_SAMPLES))
    images = x.numpy().transpose(0, 2, 3, 1).astype(np.float64)

    def lime_direct():
        explainer = LimeImageExplainer(random_state=0)
        for image in images:
            explainer.explain_instance(image, lambda z: model.predict_proba(np.asarray(z).transpose(0, 3, 1, 2)),
                                       top_labels=len(CLASSES), hide_color=0, num_samples=LIME_SAMPLES)

    lib, _ = timed(lime_direct)
    rows.append(Row("lime_image", ours, lib, f"{LIME_SAMPLES} samples; lime: quickshift, ours: SLIC"))
    return rows


def text_libraries(model, data, samples: int, *, shap_lime: bool) -> list[Row]:
    subset, x, target = explained(model, data, samples)
    net, t = model.module, torch.as_tensor(target)
    rows = []
    pad = torch.full_like(x, model.encoder.PAD)
    ours, _ = timed(lambda: audit.explain(model, subset, "integrated_gradients", n_steps=IG_STEPS))
    embeddings = net.inner.get_input_embeddings()
    lib, _ = timed(lambda: LayerIntegratedGradients(net, embeddings).attribute(x, baselines=pad, target=t,
                                                                               n_steps=IG_STEPS))
    rows.append(Row("captum LayerIntegratedGradients", ours, lib, f"{IG_STEPS} steps, at the token embeddings"))
    ours, _ = timed(lambda: audit.explain(model, subset, "occlusion"))
    lib, _ = timed(lambda: Occlusion(net).attribute(x, sliding_window_shapes=(1,), baselines=model.encoder.UNK,
                                                    target=t))
    rows.append(Row("captum Occlusion", ours, lib, "one token at a time"))
    if not shap_lime:
        return rows
    ours, _ = timed(lambda: explain_shap(model, subset, seed=0))
    lib, _ = timed(lambda: [direct_permutation_shap(model, ids, c) for ids, c in zip(x.numpy(), target)])
    rows.append(Row("shap PermutationExplainer", ours, lib, f"max_evals {DEFAULT_MAX_EVALS} or 2 x tokens + 1"))
    ours, _ = timed(lambda: explain_lime(model, subset, seed=0, num_samples=LIME_SAMPLES))

    def lime_direct():
        explainer = LimeTextExplainer(class_names=list(model.classes), random_state=0)
        for text, c in zip(subset.texts, target):
            explainer.explain_instance(text, model.predict_proba, labels=(c,), num_samples=LIME_SAMPLES)

    lib, _ = timed(lime_direct)
    rows.append(Row("lime_text", ours, lib, f"{LIME_SAMPLES} samples"))
    return rows


def direct_permutation_shap(model, ids: np.ndarray, target: int) -> np.ndarray:
    """shap's PermutationExplainer over the token positions of one text, as shap runs it (tests/test_shap.py)."""
    n = int((ids != model.encoder.PAD).sum())

    def hide(mask, _positions):
        return np.where(np.append(mask, np.ones(len(ids) - n, bool)), ids, model.encoder.UNK)[None]

    explainer = shap.PermutationExplainer(lambda rows: model.proba(torch.as_tensor(rows))[:, target], hide, seed=0)
    return explainer(np.arange(n)[None], max_evals=max(DEFAULT_MAX_EVALS, 2 * n + 1), silent=True).values[0]


# -- sections -------------------------------------------------------------------------------------


def section_image(side: int, samples: int, rows: int, width: int) -> None:
    model, data = image_case(side, rows, width)
    print(f"\n== ResNet-18 ({parameters(model)}) on 3x{side}x{side} noise images, {len(CLASSES)} classes ==")
    audit_table(model, data, samples, ())
    print(f"ours against the libraries on the same {samples} images:")
    print_rows(image_libraries(model, data, samples))


def section_text(name: str, layers: int, hidden: int, heads: int, tokens: int, samples: int, rows: int,
                 skip: tuple[str, ...]) -> None:
    model, data = bert_case(layers, hidden, heads, tokens, rows)
    print(f"\n== {name}: BERT, {layers} layers, hidden {hidden}, {heads} heads ({parameters(model)}), "
          f"random weights, on {tokens}-token texts ==")
    audit_table(model, data, samples, skip)
    print(f"ours against the libraries on the same {samples} text(s):")
    print_rows(text_libraries(model, data, samples, shap_lime=not {"shap", "lime"} & set(skip)))


def section_lstm_shap(texts: int) -> None:
    spec_path = ROOT / "models" / "reviews-lstm.toml"
    spec = ModelSpec.from_toml(spec_path)
    if not spec.output.is_file():
        print("training reviews-lstm ...", flush=True)
        if cli_main(["train", str(spec_path), "--quiet"]) != 0:
            raise SystemExit(1)
    model = audit.load_model(spec.output)
    data = audit.load_dataset("reviews", "test").subset(np.arange(texts))
    x = model.encode(data)
    print(f"\n== text SHAP of the reference LSTM on {texts} test reviews "
          f"({int((x != model.encoder.PAD).sum(1).float().mean())} tokens on average) ==")
    ours, mine = timed(lambda: explain_shap(model, data, seed=0))
    lib, direct = timed(lambda: [direct_permutation_shap(model, ids, c) for ids, c in zip(x.numpy(), mine.target)])
    gap = max(np.abs(mine.values[i, : len(v)] - v).max() for i, v in enumerate(direct))
    print_rows([Row("shap PermutationExplainer", ours, lib,
                    f"largest difference {gap:.1g}; additivity error {mine.additivity_error.max():.1g}")])


SECTIONS = ("cnn64", "cnn224", "tiny-bert", "bert6", "lstm-shap")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: narrow ResNet on 32x32, 1-layer BERT on 32 tokens, 1-2 examples")
    parser.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    parser.add_argument("--samples", type=int, help="examples per per-example analyzer (default: per section)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    quick = "  (quick smoke run: not the sizes the sections name)" if args.quick else ""
    print(f"torch threads: {args.threads}{quick}")

    def samples(default: int) -> int:
        return args.samples or (1 if args.quick else default)

    for name in args.sections:
        if name == "cnn64":
            section_image(32 if args.quick else 64, samples(4), 16 if args.quick else 64, 8 if args.quick else 64)
        elif name == "cnn224":
            section_image(32 if args.quick else 224, samples(1), 16 if args.quick else 32, 8 if args.quick else 64)
        elif name == "tiny-bert":
            section_text(name, 1 if args.quick else 2, 32 if args.quick else 128, 2, 32 if args.quick else 256,
                         samples(1), 16, ())
        elif name == "bert6":
            # one 256-token text costs about a second per forward pass on 2 cores: SHAP (513 passes)
            # and LIME (1,000) would take tens of minutes, so this section leaves them out
            section_text(name, 1 if args.quick else 6, 32 if args.quick else 768, 2 if args.quick else 12,
                         32 if args.quick else 256, samples(1), 8, ("shap", "lime"))
        else:
            section_lstm_shap(8 if args.quick else 32)
    return 0


if __name__ == "__main__":
    sys.exit(main())
