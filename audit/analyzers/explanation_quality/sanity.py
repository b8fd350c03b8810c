"""The cascading model-randomization check (Adebayo et al. 2018), stopped per method once its verdict is decided.

Stage k of S re-initializes the top ceil(k L / S) of the model's L parameter-owning layers (cumulatively: a
layer keeps the weights its stage drew). A method's score is the median over the stages of the mean rank
correlation of its trained and randomized attributions, and it passes below the threshold.

Early stop: a rank correlation lies in [-1, 1], so once some stages are known the median over all of them
lies between the median with every stage still to run at -1 and the one with all of them at +1 (a stage
whose correlation turns out undefined only drops out, which moves the median no further). When both bounds
are on the same side of the threshold, no stage still to run can change the verdict, and the method is not
attributed again; its score is then the median over the stages that ran, which lies between the two bounds,
so it gives the same verdict. With four stages and the threshold 0.5 this takes at least two stages for a
pass (both below 0) and three for a fail. The stages run from the deepest (every layer re-initialized) up:
there the attributions of a method that follows the weights differ most, which decides a pass soonest.

The copies are attributed with fewer points on the integration path (integrated gradients) and fewer noisy
baselines (GradientSHAP) than the trained model (`COPY_SETTINGS`): their attributions are only ranked against the
trained model's, and a coarser integral ranks features as the converged one does. A method that ignores the
weights keeps its verdict, as what makes it ignore them (the input, or a factor of it) is computed exactly at any
number of steps. Measured on the sanity zoo (tests/sanity_zoo.py, 12 examples, every stage of 4): integrated
gradients at 16 steps correlate 0.99 or more with the copies' 50-step attributions and move a stage's correlation by
at most 0.02; GradientSHAP at 10 samples moves a score by at most 0.03, less than its own 25-sample score moves
between seeds (up to 0.05). Over benchmarks/sanity_rates.py's 50 checks of each (7 models, 5 seeds) both scores
moved by 0.002 on average and by at most 0.08 (a transformer, its correlations near 0); the false alarms (none of
either) and the misses of the weight-blind maps (none of 125) stayed.
"""

from __future__ import annotations

import copy
import warnings as python_warnings
from dataclasses import dataclass, field

import numpy as np
import torch
from scipy.stats import ConstantInputWarning, spearmanr

from audit.core.analyzer import Cost
from audit.core.dataset import Dataset
from audit.core.model import Model
from audit.methods.attributions.methods import attribute_all, attribution_cost
from audit.methods.attributions.registry import get_method
from audit.methods.attributions.sampling import seeded

#: method -> (option, value) its randomized copies are attributed with; the value is also its passes per example.
COPY_SETTINGS = {"integrated_gradients": ("n_steps", 16), "gradient_shap": ("n_samples", 10)}


def copy_cost(model: Model, methods: list[str]) -> Cost:
    """The passes per example of attributing a randomized copy of `model` with `methods`: the trained model's, less
    the steps and samples `COPY_SETTINGS` leaves out."""
    saved = sum(get_method(m).passes - COPY_SETTINGS[m][1] for m in methods if m in COPY_SETTINGS)
    return attribution_cost(model, tuple(methods)) + Cost(backward=-saved)


def attribute_copy(model: Model, data: Dataset, methods: list[str], target, *, seed: int):
    """Attributions of a randomized copy per method that ran, with `COPY_SETTINGS`, and a warning per method that
    could not run."""
    options = {method: dict([setting]) for method, setting in COPY_SETTINGS.items()}
    return attribute_all(model, data, methods, target, seed=seed, options=options)


def parameter_layers(module: torch.nn.Module) -> list[tuple[str, torch.nn.Module]]:
    """Modules that own parameters, in registration order (input side first)."""
    return [(name, m) for name, m in module.named_modules() if any(True for _ in m.parameters(recurse=False))]


def cascade_stages(model: Model, stages: int) -> list[list[str]]:
    """The layers randomized at each step of the cascade: the top ceil(k L / S) of the L
    parameter-owning layers at step k of S = min(stages, L), top (output side) first."""
    names = [name for name, _ in reversed(parameter_layers(model.module))]
    steps = max(1, min(stages, len(names)))
    return [names[: -(-len(names) * k // steps)] for k in range(1, steps + 1)]


def planned_stages(stages: int) -> int:
    """The stages the early stop runs before a clear verdict, planned before the work: floor(S / 2) + 1 of S, what a
    fail takes at best (a pass with every stage below 0 takes ceil(S / 2), an undecided one all S)."""
    return min(stages, stages // 2 + 1)


def randomized(model: Model, stages: list[list[str]], stage: int, *, seed: int) -> Model:
    """A copy of `model` with the layers of `stages[0..stage]` re-initialized, each stage k's new layers drawn
    from `seed` + k (so stage k's copy keeps the weights of the stages before it: Adebayo et al.'s cascade).
    Layers with `reset_parameters` get their own initialization (as Quantus does), others N(0, 0.02)."""
    module = copy.deepcopy(model.module).cpu()  # drawn on the CPU: the same weights wherever the model runs
    layers = dict(parameter_layers(module))
    done: set[str] = set()
    for k, names in enumerate(stages[: stage + 1]):
        with seeded(seed + k, model.device), torch.no_grad():
            for name in (n for n in names if n not in done):
                done.add(name)
                if hasattr(layers[name], "reset_parameters"):
                    layers[name].reset_parameters()
                else:
                    for p in layers[name].parameters(recurse=False):
                        p.normal_(0.0, 0.02)
    return Model(module, model.task, architecture=model.architecture, config=model.config, device=model.device,
                 batch_size=model.batch_size)


def cascade(model: Model, stages: list[list[str]], *, seed: int):
    """The cascade's randomized copies of `model`, stage by stage."""
    return (randomized(model, stages, k, seed=seed) for k in range(len(stages)))


def decided(known: list[float], remaining: int, threshold: float) -> bool:
    """Whether the median over `known` correlations and `remaining` ones still to come (each in [-1, 1], or
    undefined) is on one side of `threshold` whatever those turn out to be."""
    values = [v for v in known if not np.isnan(v)]
    if remaining == 0:
        return True
    if not values:
        return False
    low, high = np.median(values + [-1.0] * remaining), np.median(values + [1.0] * remaining)
    return bool(high < threshold or low >= threshold)


@dataclass
class SanityCheck:
    """Per method, the correlation at each stage of the cascade (NaN where the stage did not run), and the
    warnings of methods that could not attribute a randomized copy."""

    by_stage: dict[str, list[float]]
    warnings: list[str] = field(default_factory=list)

    @property
    def correlation(self) -> dict[str, float]:
        """The median over the stages that ran, per method."""
        return {m: nanmedian(rhos) for m, rhos in self.by_stage.items()}


def sanity_check(model: Model, data: Dataset, attributions: dict[str, np.ndarray], target: np.ndarray,
                 compared: np.ndarray, stages: list[list[str]], *, threshold: float, seed: int,
                 scores) -> SanityCheck:
    """Run the cascade, deepest stage first, attributing each randomized copy with the methods whose verdict is
    not decided yet; `scores(attributions)` gives the (N, P) signed scores compared over `compared`."""
    by_stage = {m: [float("nan")] * len(stages) for m in attributions}
    ran: dict[str, list[float]] = {m: [] for m in attributions}
    warnings: list[str] = []
    for step, stage in enumerate(reversed(range(len(stages)))):
        pending = [m for m in ran if not decided(ran[m], len(stages) - step, threshold)]
        if not pending:
            break
        after, failed = attribute_copy(randomized(model, stages, stage, seed=seed), data, pending, target, seed=seed)
        warnings += [f"sanity check: {w}" for w in failed]
        for m in pending:
            if m in after:
                rho = mean_rank_correlation(scores(attributions[m]), scores(after[m]), compared)
                by_stage[m][stage] = rho
                ran[m].append(rho)
            else:
                del by_stage[m], ran[m]
    return SanityCheck(by_stage, warnings)


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rho, NaN where either side is constant."""
    with python_warnings.catch_warnings():
        python_warnings.simplefilter("ignore", ConstantInputWarning)
        return float(spearmanr(a, b).statistic)


def nanmean(values) -> float:
    """The mean of the values that are not NaN, NaN when there are none."""
    values = np.asarray(values, dtype=float)
    return float(values[~np.isnan(values)].mean()) if (~np.isnan(values)).any() else float("nan")


def nanmedian(values) -> float:
    """The median of the values that are not NaN, NaN when there are none."""
    values = np.asarray(values, dtype=float)
    return float(np.median(values[~np.isnan(values)])) if (~np.isnan(values)).any() else float("nan")


def mean_rank_correlation(a: np.ndarray, b: np.ndarray, valid: np.ndarray) -> float:
    """Mean over examples of Spearman's rho between rows of `a` and `b`, over each row's `valid` features."""
    return nanmean([spearman(a[i][valid[i]], b[i][valid[i]]) for i in range(len(a)) if valid[i].sum() > 1])
