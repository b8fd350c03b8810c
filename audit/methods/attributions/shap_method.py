"""SHAP values from the shap library, for the target class only.

Tables and images: shap's DeepExplainer on a copy of the module that outputs only the
target logit (one explainer per target class), against a background: rows given by the
caller, else drawn from the model's training split, else from the audited data across its
classes (`audit.methods.attributions.sampling.background_sample`); never only the explained rows,
against which a feature they all share gets no attribution however much it decides.
DeepExplainer's values add up exactly to logit(x) - E[logit(background)];
where it fails on a layer type (the values of an instance do not add up within shap's
tolerance), shap's GradientExplainer (expected gradients) takes over and the fallback
is recorded. Expected gradients promise no additivity (their sum only approaches the
output gap as samples grow): only an explainer that promises it (`ADDITIVE`) has its
additivity error reported. DeepExplainer runs one pass over (instance, background) pairs
per row it explains, whatever the row's size; each of its rows here packs many instances
side by side (`PackedTargetLogit`), so it makes that many times fewer passes.

Text: shap's PermutationExplainer over the words of each text (`audit.core.words`), where
a hidden word becomes the unknown-word token (one for all its subwords, for a Hugging Face
tokenizer); the explained output is the target probability. Its values add up exactly
to p(x) - p(all words unknown). Its algorithm runs here, with the same permutations and the
same sums (a test holds it equal to shap called directly), because the masked texts of many
texts then go to the model in one batch (`_explain_tokens`).
"""

from __future__ import annotations

import copy
import dataclasses
import re
import warnings
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from audit import engine
from audit.methods.attributions.hookable import hookable_copy
from audit.methods.attributions.registry import register_method
from audit.methods.attributions.sampling import background_sample, seeded
from audit.methods.attributions.targets import resolve_target
from audit.core.passes import rows_per_pass, rows_that_fit
from audit.core.dataset import Dataset
from audit.core.words import hide_words, masked_bytes, word_counts

DEFAULT_BACKGROUND = 100
DEFAULT_GRADIENT_SAMPLES = 200
DEFAULT_MAX_EVALS = 300  # model calls per text: about 7 antithetic permutations of a 20-token text
TEXTS_PER_TASK = 16  # texts per batch of the engine's map (each costs up to max_evals model calls)
TEXT_ROWS = 8192  # masked texts built and scored together, fewer where they would not fit (`masked_bytes`)
#: Inputs per DeepExplainer pass (instances packed per row x 2 x background rows), fewer where their activations
#: would not fit (`audit.core.passes.rows_per_pass`); a pass holds at least one instance (2 x background rows).
PACKED_ROWS = 8192
ADDITIVITY_TOLERANCE = 1e-2  # shap's own check of DeepExplainer's values
#: The explainers whose values add up to the explained output (shap's DeepExplainer checks it;
#: a permutation explainer's values telescope). Not GradientExplainer: expected gradients.
ADDITIVE = ("DeepExplainer", "PermutationExplainer")


@dataclass(frozen=True)
class ShapExplanation:
    """SHAP values of the target class with the numbers that check them.

    `values` has the model's input shape ((N, L) per token position for text);
    `base_values` + `values.sum()` equals `outputs` for the `additive` explainers and only
    approaches it for expected gradients."""

    values: np.ndarray
    base_values: np.ndarray
    outputs: np.ndarray
    target: np.ndarray
    explainer: str
    output: str  # "logit" or "probability"
    background: str
    warnings: tuple[str, ...] = ()

    @property
    def additive(self) -> bool:
        """Whether the explainer promises that the values add up to the output (`ADDITIVE`)."""
        return self.explainer in ADDITIVE

    @property
    def additivity_error(self) -> np.ndarray:
        """|sum of values + base value - model output| per example: a check of an `additive`
        explainer, a sampling gap for the others."""
        total = self.values.reshape(len(self.values), -1).sum(axis=1) + self.base_values
        return np.abs(total - self.outputs)


class TargetLogit(nn.Module):
    """The logit of one class, as a one-output model for shap."""

    def __init__(self, module: nn.Module, index: int):
        super().__init__()
        self.module = module
        self.index = index

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.module(x)[:, self.index : self.index + 1]


class PackedTargetLogit(TargetLogit):
    """The logit of one class for rows that pack instances side by side, (B, k, *input), summed over
    the k slots. DeepExplainer pairs each slot with the same slot of a background row (the
    background is packed as k copies), and a sum passes each slot's multipliers back unchanged,
    so every slot gets exactly the values shap computes for that instance alone."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.module(x.reshape(-1, *x.shape[2:]))[:, self.index]
        return logits.reshape(len(x), -1).sum(dim=1, keepdim=True)


def explain_shap(model, data: Dataset, target=None, *, seed: int = 0,
                 background: int | Dataset | torch.Tensor = DEFAULT_BACKGROUND, pool: Dataset | None = None,
                 max_evals: int = DEFAULT_MAX_EVALS) -> ShapExplanation:
    """SHAP values of the target (default: predicted) class for every example of `data`.

    `background` (tables, images): the rows themselves (a Dataset, or a tensor of model inputs), or
    how many to draw from the training split, else from `pool` (the audited data) across classes."""
    x = model.encode(data)
    target = resolve_target(model, data, target)
    if model.modality == "text":
        index = model.encoder.word_index(data.texts)
        starts = range(0, len(x), TEXTS_PER_TASK)
        batches = ((x[i : i + TEXTS_PER_TASK], index[i : i + TEXTS_PER_TASK], target[i : i + TEXTS_PER_TASK])
                   for i in starts)
        parts = list(engine.current().map(tokens_batch, (model, seed, max_evals), batches))
        if len(parts) == 1:
            return parts[0]
        joined = {f: np.concatenate([getattr(p, f) for p in parts])
                  for f in ("values", "base_values", "outputs", "target")}
        return dataclasses.replace(parts[0], **joined)
    if isinstance(background, torch.Tensor):
        bg, source = background.float(), f"{len(background)} given background rows"
    elif isinstance(background, Dataset):
        bg, source = model.encode(background), f"{len(background)} given background rows"
    else:
        bg_data, source = background_sample(model, pool, background, seed=seed)
        bg = model.encode(bg_data)
    try:
        return _explain_deep(model, x, target, bg, source)
    except Exception as exc:  # noqa: BLE001 - any layer shap's DeepExplainer cannot handle
        reason = re.split(r"(?<=[.!])\s", str(exc).strip())[0][:200]
        result = _explain_gradient(model, x, target, bg, source, seed=seed)
        warning = f"shap's DeepExplainer failed on this model ({type(exc).__name__}: {reason}); " \
                  "used GradientExplainer (expected gradients) instead"
        return ShapExplanation(**{**result.__dict__, "warnings": (warning,)})


def _explain_deep(model, x, target, bg, source) -> ShapExplanation:
    """DeepExplainer's values, a class at a time, the class with the fewest examples first: ValueError at the first
    class whose values do not add up to the model's output, before the others are explained (they would be
    thrown away)."""
    # shap leaves hooks behind when a layer fails mid-way: it only ever sees a copy.
    module = hookable_copy(model.module, bg[:2].to(model.device))
    outputs = model.logits(x).numpy().astype(np.float64)[np.arange(len(x)), target]
    explanation = ShapExplanation(np.zeros(tuple(x.shape)), np.zeros(len(x)), outputs, target, "DeepExplainer",
                                  "logit", source)  # its values and base values filled in place, class by class
    classes = sorted(((int(c), x[target == c]) for c in np.unique(target)), key=lambda pair: len(pair[1]))
    rows = rows_per_pass(model, bg, rows=min(PACKED_ROWS, 2 * len(bg) * len(x)), backward=True,
                         what="shap (DeepExplainer)")
    shared = (module, bg, model.device, max(1, rows // (2 * len(bg))))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="unrecognized nn.Module")  # the failure it leads to is reported
        for (c, _), (phi, expected) in zip(classes, engine.current().map(deep_class, shared, classes)):
            explanation.values[target == c] = phi
            explanation.base_values[target == c] = expected
            error = explanation.additivity_error[target == c].max(initial=0.0)
            if error >= ADDITIVITY_TOLERANCE:
                raise ValueError(f"the SHAP values do not sum up to the model's output (off by up to {error:.3g}, "
                                 f"over shap's tolerance of {ADDITIVITY_TOLERANCE:g})")
    return explanation


def deep_explainer_adds_up(model, x: torch.Tensor, bg: torch.Tensor) -> bool:
    """Whether DeepExplainer's values of the predicted class add up to the model's output on the inputs `x`
    against the background `bg` (where they do not, `explain_shap` falls back to GradientExplainer)."""
    try:
        _explain_deep(model, x, model.logits(x).argmax(1).numpy(), bg, "")
    except Exception:  # noqa: BLE001 - as explain_shap: any failure means the fallback
        return False
    return True


def deep_class(shared, batch) -> tuple[np.ndarray, float]:
    """DeepExplainer's values of one class `(index, its rows)` for `(hookable module, background, device, instances
    packed per row)`, and shap's expected value of that class's logit."""
    import shap

    module, bg, device, packed_per_row = shared
    c, x = batch
    bg = bg.to(device)
    k = min(len(x), packed_per_row)
    packed = x[np.resize(np.arange(len(x)), -(-len(x) // k) * k)].reshape(-1, k, *x.shape[1:])  # pads with repeats
    explainer = shap.DeepExplainer(PackedTargetLogit(module, c), bg[:, None].repeat_interleave(k, dim=1))
    phi = explainer.shap_values(packed.to(device), check_additivity=False)
    with torch.no_grad():  # shap's expected value, for the unpacked logit
        expected = float(TargetLogit(module, c)(bg).mean(0).cpu().numpy()[0])
    return np.asarray(phi).reshape((-1, *x.shape[1:]))[: len(x)], expected


def _explain_gradient(model, x, target, bg, source, *, seed: int) -> ShapExplanation:
    import shap  # takes seconds to import: only runs that use SHAP pay for it

    module = copy.deepcopy(model.module).eval()
    values = np.zeros(tuple(x.shape), dtype=np.float64)
    # shap draws every sample before it batches them: the batch size changes no value
    batch = rows_per_pass(model, bg, rows=DEFAULT_GRADIENT_SAMPLES, backward=True, what="shap (GradientExplainer)")
    for c in np.unique(target):
        rows = np.flatnonzero(target == c)
        explainer = shap.GradientExplainer(TargetLogit(module, int(c)), bg.to(model.device),
                                           batch_size=batch)
        with seeded(seed, model.device):
            phi = explainer.shap_values(x[rows].to(model.device), nsamples=DEFAULT_GRADIENT_SAMPLES, rseed=seed)
        values[rows] = np.asarray(phi).reshape((len(rows), *x.shape[1:]))
    logits = model.logits(x).numpy().astype(np.float64)
    base = model.logits(bg).numpy().astype(np.float64)[:, target].mean(axis=0)
    return ShapExplanation(values, base, logits[np.arange(len(x)), target], target, "GradientExplainer", "logit",
                           source)


def permutation_orders(features: int, permutations: int, seed: int) -> np.ndarray:
    """(permutations, features): the orders shap's PermutationExplainer(seed=seed) walks for one
    instance; it seeds numpy's global generator and shuffles one index array in place, once per order."""
    rng, order = np.random.RandomState(seed), np.arange(features)
    orders = np.empty((permutations, features), dtype=np.int64)
    for k in range(permutations):
        rng.shuffle(order)
        orders[k] = order
    return orders


def permutation_masks(orders: np.ndarray) -> np.ndarray:
    """(permutations * (2 * features + 1), features) booleans, shown = True: per order, every
    feature hidden, then shown one at a time in that order, then hidden again in the same order."""
    permutations, features = orders.shape
    steps = np.arange(2 * features + 1)
    # the step at which each feature is shown, and the step at which it is hidden again
    rank = np.empty_like(orders)
    np.put_along_axis(rank, orders, np.arange(features)[None], axis=1)
    shown = (steps[None, :, None] > rank[:, None]) & (steps[None, :, None] <= rank[:, None] + features)
    return shown.reshape(-1, features)


def permutation_values(outputs: np.ndarray, orders: np.ndarray) -> tuple[np.ndarray, float]:
    """shap's PermutationExplainer estimate from the outputs of `permutation_masks(orders)`, summed
    in its order (so the values are the same to the last bit): each feature's mean change of the
    output when it is shown (forward) and when it is hidden (backward). They add up exactly to
    output(all shown) - output(all hidden), the base value."""
    permutations, features = orders.shape
    outputs = outputs.reshape(permutations, 2 * features + 1)
    values = np.zeros(features)
    for order, out in zip(orders, outputs):
        values[order] += out[1 : features + 1] - out[:features]
        values[order] += out[features:-1] - out[features + 1 :]
    return values / (2 * permutations), float(outputs[-1, 0])


def tokens_batch(shared, batch) -> ShapExplanation:
    """The word SHAP values of a few texts `(ids, word index, target)` for `(model, seed, max_evals)`."""
    model, seed, max_evals = shared
    ids, index, target = batch
    return _explain_tokens(model, ids, index, target, seed=seed, max_evals=max_evals)


def _explain_tokens(model, ids, index, target, *, seed: int, max_evals: int) -> ShapExplanation:
    """shap's PermutationExplainer over the words of each text, computed here: the masked texts of
    many texts go to the model in one batch (shap calls it 10 rows at a time, one text at a time,
    and compiles its numba helpers in every process: 5 to 16 times slower on 32 reviews,
    `benchmarks/real_models.py`). Each masked text keeps the width the model reads, padding
    included, so the values add up to the model's own probability."""
    values = np.zeros(tuple(ids.shape), dtype=np.float64)
    base = np.zeros(len(ids))
    words = word_counts(index)
    lengths = (ids != model.encoder.PAD).sum(dim=1).numpy()
    texts = [i for i in np.argsort(lengths, kind="stable") if words[i] > 0]  # similar widths share a batch
    orders = [permutation_orders(words[i], max(max_evals, 2 * words[i] + 1) // (2 * words[i] + 1), seed)
              for i in texts]
    rows = [len(o) * (2 * o.shape[1] + 1) for o in orders]  # masked texts per text
    together = rows_that_fit(masked_bytes(ids), rows=TEXT_ROWS, what="shap (masked texts)")
    batch = (np.cumsum(rows) - rows) // together  # a text goes in the batch where its masked texts start
    for b in np.unique(batch):
        chunk = np.flatnonzero(batch == b)
        shown = [permutation_masks(orders[j]) for j in chunk]
        hidden = torch.cat([_hide_words(model.encoder, ids[texts[j]], index[texts[j]], m)
                            for j, m in zip(chunk, shown)])
        proba = np.split(model.proba(hidden), np.cumsum([len(m) for m in shown])[:-1])
        for j, p in zip(chunk, proba):
            i = texts[j]
            values[i, : words[i]], base[i] = permutation_values(p[:, target[i]], orders[j])
    proba = model.proba(ids)
    return ShapExplanation(values, base, proba[np.arange(len(ids)), target], target, "PermutationExplainer",
                           "probability", "each hidden word replaced by the unknown-word token")


def _hide_words(encoder, ids: torch.Tensor, index: np.ndarray, shown: np.ndarray) -> torch.Tensor:
    """One copy of the text `ids` (with its word `index`) per row of `shown` (one column per word),
    every hidden word read as the unknown-word token (`audit.core.words.hide_words`)."""
    n = len(shown)
    return hide_words(ids.expand(n, -1), np.broadcast_to(index, (n, len(index))), ~shown, encoder.UNK, encoder.PAD)


@register_method("shap", description="SHAP values (shap: DeepExplainer, or a token permutation explainer for text)")
def shap_attributions(model, data: Dataset, target=None, *, seed: int = 0,
                      background: int | Dataset | torch.Tensor = DEFAULT_BACKGROUND,
                      max_evals: int = DEFAULT_MAX_EVALS) -> np.ndarray:
    return explain_shap(model, data, target, seed=seed, background=background, max_evals=max_evals).values
