"""Captum's attribution methods behind the registry.

Tables and images are attributed in the model's input space; text at the token
embedding layer (`model.embedding`), summed over the embedding dimension per token
and zero at padding, then summed per word (`audit.core.words`: subwords of a Hugging
Face tokenizer make one word). Baselines are the "absent" input: zeros for tables (the
mean of standardized features, no category for one-hot columns) and images (a black
image), the PAD token's embedding for text (at every word token; [CLS]/[SEP] are kept).
Examples are batched so that one forward pass holds at most the rows `audit.methods.memory.rows_per_pass`
allows (examples x steps or perturbations), instead of captum's defaults: every example's steps
in one pass for IG (memory grows with the data) and one pass per perturbation for occlusion.
That bound is the smallest of `MAX_ROWS_PER_PASS`, `ELEMENTS_PER_PASS` input numbers, and what the
activations the backward pass keeps (measured per row on the widest input) allow within a pass's
bytes and the run's memory budget. The activations are what binds for large models: a 6-layer BERT
(hidden 768) keeps 74 MB per row of 256 subwords, so 4096-row passes would need about 300 GB
(benchmarks/attribution_memory.py); the reference models keep 0.2-73 KB per row and are not bound
by them. Not the model's `batch_size`: that counts rows of inference passes, which keep nothing, and
a module wrapped with default settings declares 512 whatever its size. GradientSHAP cannot split one
example's samples over passes, so its passes hold at least `n_samples` rows.
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from captum.attr import (
    DeepLift,
    GradientShap,
    IntegratedGradients,
    LayerDeepLift,
    LayerFeatureAblation,
    LayerGradCam,
    LayerGradientXActivation,
    LayerIntegratedGradients,
    Occlusion,
    Saliency,
)
from torch import nn

from audit import engine
from audit.methods.attributions.hookable import hookable_copy
from audit.methods.attributions.registry import register_method
from audit.methods.attributions.sampling import seeded
from audit.methods.memory import gradients_in_eval, rows_per_pass
from audit.core.dataset import Dataset
from audit.core.words import per_word
from audit.engine import batch_seed
from audit._util.errors import AuditInputError
from audit.core.model import Model

IG_STEPS = 50  # integrated gradients' points on the path, captum's default
GRADIENT_SHAP_SAMPLES = 25  # GradientSHAP's noisy baselines per example
#: Input elements (rows x features) per forward pass; sets how many examples share a pass.
ELEMENTS_PER_PASS = 2**22
MAX_ROWS_PER_PASS = 4096

Compute = Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor]


def attribute(model: Model, data: Dataset, target: np.ndarray, compute: Compute, *, evaluations: int,
              seed: int, method: str) -> np.ndarray:
    """Run `compute(x, target, rows)` over chunks of `data` encoded in model space.

    `evaluations` is the number of forward rows one example costs (steps, samples,
    perturbations); chunks are sized so one pass holds about the rows `rows_per_pass` allows (`method`
    names them where the memory budget shrinks them), and `rows` tells `compute` that bound for methods
    that split one example's evaluations over passes.
    For text, `compute` gets ids without trailing padding and returns (n, length).
    """
    x = model.encode(data)
    targets = torch.as_tensor(np.asarray(target), dtype=torch.long)
    asked = min(MAX_ROWS_PER_PASS, ELEMENTS_PER_PASS // max(1, x[0].numel())) if len(x) else MAX_ROWS_PER_PASS
    rows = rows_per_pass(model, x, rows=max(1, min(asked, len(x) * evaluations)), backward=True, what=method)
    chunk = max(1, rows // max(1, evaluations))
    starts = range(0, len(x), chunk)
    batches = ((i, x[start : start + chunk], targets[start : start + chunk]) for i, start in enumerate(starts))
    out = torch.zeros(x.shape, dtype=torch.float32)
    shared = (model, compute, seed, rows)
    for start, attr in zip(starts, engine.current().map(attribute_chunk, shared, batches)):
        out[start : start + len(attr), : attr.shape[1]] = attr
    if model.modality == "text":
        return per_word(out.numpy(), model.encoder.word_index(data.texts))
    return out.numpy()


def attribute_chunk(shared, batch) -> torch.Tensor:
    """Attributions of one chunk `(index, x, target)` by `compute`, seeded with the chunk's own seed;
    for text, (n, length without trailing padding) and zero at padding."""
    model, compute, seed, rows = shared
    index, x, target = batch
    x = model.without_padding(x)
    with seeded(batch_seed(seed, index), model.device), gradients_in_eval(model), warnings.catch_warnings():
        # captum warns that it sets requires_grad on its own copies and hooks activations; both expected.
        warnings.filterwarnings("ignore", category=UserWarning, module="captum")
        attr = compute(x.to(model.device), target.to(model.device), rows).detach().float().cpu()
    return attr.masked_fill(x == model.encoder.PAD, 0.0) if model.modality == "text" else attr


def embedding_layer(model: Model) -> nn.Embedding:
    if model.embedding is None:
        raise AuditInputError(
            f"{model.module_name} has no token embedding at `.embedding`; text attributions are taken there")
    return model.embedding


def last_spatial_layer(model: Model, example: torch.Tensor) -> nn.Module:
    """Grad-CAM's layer: the last module to finish whose output has the spatial size of the last
    convolution's, among those called once per pass (Selvaraju et al. 2017 take the last convolutional
    feature maps; in a residual network that is the last block, sum of both paths, not its last conv)."""
    if not any(isinstance(m, nn.Conv2d) for m in model.module.modules()):
        raise AuditInputError(f"grad_cam needs a convolutional network; {model.module_name} has no nn.Conv2d")
    finished: list[tuple[nn.Module, tuple[int, ...]]] = []
    def record(m, _, out):
        finished.append((m, tuple(out.shape) if isinstance(out, torch.Tensor) else ()))

    hooks = [m.register_forward_hook(record) for m in model.module.modules() if m is not model.module]
    try:
        with torch.no_grad():
            model.module(example.to(model.device))
    finally:
        for hook in hooks:
            hook.remove()
    calls = Counter(id(m) for m, _ in finished)
    size = next(shape[2:] for m, shape in reversed(finished) if isinstance(m, nn.Conv2d))
    return next(m for m, shape in reversed(finished)
                if (len(shape) == 4 and shape[2:] == size and calls[id(m)] == 1) or isinstance(m, nn.Conv2d))


def embedded_forward(model: Model) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """f(embeddings, ids): the model's logits for `ids` with the output of its token embedding
    replaced by `embeddings`, for methods that interpolate inputs (in embedding space here)."""
    layer = embedding_layer(model)

    def forward(embeddings: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        handle = layer.register_forward_hook(lambda module, args, output: embeddings)
        try:
            return model.module(ids)
        finally:
            handle.remove()

    return forward


def pad_ids(model: Model, ids: torch.Tensor) -> torch.Tensor:
    """The text baseline: every word token PAD (whose embedding stands for "no token"), the tokens that
    frame the words ([CLS], [SEP]) kept."""
    markers = torch.tensor(model.encoder.markers, dtype=ids.dtype, device=ids.device)
    return torch.where(torch.isin(ids, markers), ids, model.encoder.PAD)


def per_token(attr: torch.Tensor) -> torch.Tensor:
    return attr.sum(dim=-1)


def _unsupported(method: str, model: Model, exc: Exception) -> AuditInputError:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return AuditInputError(f"{method} cannot attribute {model.module_name}: {first}")


@register_method("integrated_gradients", description="Integrated Gradients from the absent input (captum)",
                 passes=IG_STEPS)
def integrated_gradients(model: Model, data: Dataset, target: np.ndarray, *, seed: int = 0,
                         n_steps: int = IG_STEPS) -> np.ndarray:
    def compute(x, t, rows):
        steps_rows = max(len(x), min(rows, len(x) * n_steps))  # captum splits the steps over passes
        if model.modality == "text":
            ig = LayerIntegratedGradients(model.module, embedding_layer(model))
            return per_token(ig.attribute(x, baselines=pad_ids(model, x), target=t, n_steps=n_steps,
                                          internal_batch_size=steps_rows))
        ig = IntegratedGradients(model.module)
        return ig.attribute(x, baselines=torch.zeros_like(x), target=t, n_steps=n_steps,
                            internal_batch_size=steps_rows)

    return attribute(model, data, target, compute, evaluations=n_steps, seed=seed, method="integrated_gradients")


@register_method("saliency", description="|gradient| of the target logit (text: gradient x embedding) (captum)")
def saliency(model: Model, data: Dataset, target: np.ndarray, *, seed: int = 0) -> np.ndarray:
    def compute(x, t, rows):
        if model.modality == "text":
            return per_token(LayerGradientXActivation(model.module, embedding_layer(model)).attribute(x, target=t))
        return Saliency(model.module).attribute(x, target=t, abs=True)

    return attribute(model, data, target, compute, evaluations=1, seed=seed, method="saliency")


@register_method("gradient_shap", description="GradientSHAP: expected gradients from the absent input, "
                                              "with Gaussian noise on the inputs (text: on the embeddings) (captum)",
                 passes=GRADIENT_SHAP_SAMPLES)
def gradient_shap(model: Model, data: Dataset, target: np.ndarray, *, seed: int = 0,
                  n_samples: int = GRADIENT_SHAP_SAMPLES, stdevs: float = 0.1) -> np.ndarray:
    def compute(x, t, rows):
        if model.modality == "text":
            # captum's LayerGradientShap interpolates token ids, not embeddings; so GradientSHAP runs
            # on the embeddings, from the PAD embedding, with the ids passed along.
            embeddings = embedding_layer(model)(x).detach()
            baseline = embedding_layer(model)(pad_ids(model, x[:1])).detach()
            gs = GradientShap(embedded_forward(model))
            return per_token(gs.attribute(embeddings, baselines=baseline, target=t, n_samples=n_samples,
                                          stdevs=stdevs, additional_forward_args=(x,)))
        gs = GradientShap(model.module)
        return gs.attribute(x, baselines=torch.zeros_like(x[:1]), target=t, n_samples=n_samples, stdevs=stdevs)

    return attribute(model, data, target, compute, evaluations=n_samples, seed=seed, method="gradient_shap")


@register_method("deeplift", description="DeepLIFT (rescale rule) from the absent input (captum)", passes=2)
def deeplift(model: Model, data: Dataset, target: np.ndarray, *, seed: int = 0) -> np.ndarray:
    hookable: list[torch.nn.Module] = []  # for images and tables, made from the first batch

    def compute(x, t, rows):
        try:
            if model.modality == "text":
                dl = LayerDeepLift(model.module, embedding_layer(model))
                return per_token(dl.attribute(x, baselines=pad_ids(model, x), target=t))
            if not hookable:
                hookable.append(hookable_copy(model.module, x[:2]))
            return DeepLift(hookable[0]).attribute(x, baselines=torch.zeros_like(x), target=t)
        except (AssertionError, RuntimeError, NotImplementedError) as exc:
            raise _unsupported("deeplift", model, exc) from exc

    return attribute(model, data, target, compute, evaluations=2, seed=seed, method="deeplift")


@register_method("occlusion", description="occlusion: drop in the target logit when a patch, feature or "
                                          "token is set to the absent input (captum)", passes=None)
def occlusion(model: Model, data: Dataset, target: np.ndarray, *, seed: int = 0,
              window: int | None = None) -> np.ndarray:
    """`window`: the side of the square patch for images (default 1/8 of the side, at least 2)."""
    shape = model.encode(data.subset([0])).shape[1:]
    if model.modality == "image":
        c, h, w = shape
        side = window or max(2, min(h, w) // 8)
        stride = max(1, side // 2)
        windows = ((h - side) // stride + 1) * ((w - side) // stride + 1)
    else:
        windows = shape[0]

    def compute(x, t, rows):
        ppe = max(1, min(windows, rows // len(x)))
        if model.modality == "text":
            # captum's layer ablation fails on a target per example with several perturbations per pass.
            fa = LayerFeatureAblation(model.module, embedding_layer(model))
            mask = torch.arange(x.shape[1], device=x.device).view(1, -1, 1)
            return fa.attribute(x, target=t, layer_mask=mask)[..., 0]
        if model.modality == "image":
            return Occlusion(model.module).attribute(
                x, sliding_window_shapes=(c, side, side), strides=(c, stride, stride), baselines=0.0, target=t,
                perturbations_per_eval=ppe)
        return Occlusion(model.module).attribute(x, sliding_window_shapes=(1,), baselines=0.0, target=t,
                                                 perturbations_per_eval=ppe)

    return attribute(model, data, target, compute, evaluations=windows, seed=seed, method="occlusion")


@register_method("grad_cam", modalities=("image",),
                 description="Grad-CAM at the last convolution, upsampled to the image (captum; CNNs only)")
def grad_cam(model: Model, data: Dataset, target: np.ndarray, *, seed: int = 0) -> np.ndarray:
    layer: list[nn.Module] = []  # found on the first batch

    def compute(x, t, rows):
        if not layer:
            layer.append(last_spatial_layer(model, x[:1]))
        cam = LayerGradCam(model.module, layer[0]).attribute(x, target=t, relu_attributions=True)
        cam = F.interpolate(cam, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return cam.expand(-1, x.shape[1], -1, -1)

    return attribute(model, data, target, compute, evaluations=1, seed=seed, method="grad_cam")
