"""Where an audit runs: every analyzer's passes run on the model's device, and a device that is not there is
one clear line.

No GPU is needed: `stand_in_device.on_another_device()` makes torch's `meta` device a stand-in for one (real data,
CUDA's rule that a pass may not mix it with CPU tensors). A default audit of an image, a table and a text model
whose forward asserts that its input is on its parameters' device runs there with every analyzer ok and the
CPU run's numbers; a pass that stayed on the CPU would fail it (`test_the_stand_in_refuses_what_cuda_refuses`).
tests/test_cuda.py runs the same audits on a real GPU where there is one."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from stand_in_device import DEVICE, on_another_device
from torch import nn

import audit
from audit.cli import main
from audit.core import model as model_module

CLASSES = ["a", "b", "c"]
ROWS = 24


class Checked(nn.Module):
    """`body`, refusing an input that is not on its parameters' device, and counting its passes."""

    def __init__(self, body: nn.Module, embedding: nn.Embedding | None = None):
        super().__init__()
        self.body = body
        if embedding is not None:
            self.embedding = embedding
        self.passes = 0

    def forward(self, x):
        assert x.device == next(self.parameters()).device, f"input on {x.device}, parameters elsewhere"
        self.passes += 1
        if hasattr(self, "embedding"):
            mask = (x != 0).float()[..., None]
            return self.body((self.embedding(x) * mask).sum(1) / mask.sum(1).clamp(min=1))
        return self.body(x)


def image_model() -> audit.Model:
    torch.manual_seed(0)
    body = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(),
                         nn.Linear(16, len(CLASSES)))
    return audit.wrap(Checked(body).eval(), modality="image", classes=CLASSES, input_shape=(3, 8, 8))


FEATURES = [f"f{i}" for i in range(5)]


def table_model() -> audit.Model:
    torch.manual_seed(0)
    body = nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, len(CLASSES)))
    return audit.wrap(Checked(body).eval(), modality="tabular", classes=CLASSES, feature_names=FEATURES)


WORDS = [f"w{i}" for i in range(30)]


def texts() -> list[str]:
    rng = np.random.default_rng(0)
    return [" ".join(rng.choice(WORDS, rng.integers(3, 9))) for _ in range(ROWS)]


def text_model() -> audit.Model:
    torch.manual_seed(0)
    data = audit.Dataset.from_arrays(texts() * 2, np.zeros(2 * ROWS, dtype=int), classes=CLASSES, modality="text")
    tokenizer = audit.Tokenizer.fit(data, min_count=1)
    module = Checked(nn.Linear(8, len(CLASSES)), nn.Embedding(len(tokenizer.vocab), 8, padding_idx=0))
    module.padding_invariant = True  # padding is masked out of the mean
    return audit.wrap(module.eval(), modality="text", classes=CLASSES, tokenizer=tokenizer)


def dataset(kind: str) -> audit.Dataset:
    rng = np.random.default_rng(1)
    x = {"image": lambda: rng.random((ROWS, 3, 8, 8), dtype=np.float32),
         "table": lambda: rng.normal(size=(ROWS, 5)).astype(np.float32), "text": texts}[kind]()
    return audit.Dataset.from_arrays(x, rng.integers(0, len(CLASSES), ROWS), classes=CLASSES,
                                     sensitive={"group": rng.choice(["x", "y"], ROWS)},
                                     feature_names=FEATURES if kind == "table" else None,
                                     modality="text" if kind == "text" else None)


MODELS = {"image": image_model, "table": table_model, "text": text_model}
#: Every attack of the default audit, with few steps and queries: the device is the question here, not strength.
QUICK = {"robustness": {"sweep": (0.5, 2.0), "steps": 3, "flip_refine": 1, "square_queries": 20, "apgd_steps": 3,
                        "apgd_targets": 2}}


def audited(kind: str, device: str) -> tuple[audit.AuditRun, audit.Model]:
    model = MODELS[kind]()
    return audit.run(model, dataset(kind), seed=0, samples=4, options=QUICK, device=device), model


@pytest.mark.parametrize("kind", sorted(MODELS))
def test_every_analyzer_runs_on_the_models_device_with_the_cpu_numbers(kind, monkeypatch):
    reference, _ = audited(kind, "cpu")
    monkeypatch.setattr(model_module, "checked_device", lambda device: torch.device(device or "cpu"))
    with on_another_device():
        run, model = audited(kind, DEVICE.type)
    assert model.device == DEVICE and model.module.passes > 0
    elsewhere, here = ({r.analyzer: r for r in done.results} for done in (run, reference))
    assert {a: r.status for a, r in elsewhere.items()} == {a: r.status for a, r in here.items()}
    assert {r.status for r in here.values()} == {"ok"}, {a: r.error for a, r in here.items() if r.error}
    for name, result in here.items():
        assert elsewhere[name].metrics.keys() == result.metrics.keys(), name
        np.testing.assert_allclose([elsewhere[name].metrics[k] for k in result.metrics],
                                   list(result.metrics.values()), rtol=1e-6, atol=1e-9, err_msg=name)
        for key, array in result.arrays.items():
            np.testing.assert_allclose(elsewhere[name].arrays[key], array, rtol=1e-6, atol=1e-9, err_msg=key)


def test_the_stand_in_refuses_what_cuda_refuses():
    model = image_model()
    x = model.encode(dataset("image"))
    with torch.no_grad():
        expected = model.module(x)
        with on_another_device():
            module = model.module.to(DEVICE)
            out = module(x.to(DEVICE))
            assert out.device == DEVICE and torch.equal(out.cpu(), expected)
            with pytest.raises(AssertionError, match="parameters elsewhere"):  # a pass left on the CPU
                module(x)
            with pytest.raises(RuntimeError, match="same device"):  # the first layer's weight is on the device
                module.body(x)
            with pytest.raises(RuntimeError, match="subclass"):  # as CUDA's: copy to the CPU first
                out.numpy()


def test_cuda_asked_where_there_is_none_is_one_line(monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(audit.AuditInputError, match="CUDA is not available"):
        audit.run(table_model(), dataset("table"), ["performance"], device="cuda")
    with pytest.raises(audit.AuditInputError, match="not a torch device"):
        table_model().to("gpu0")
    assert main(["report", "missing.pt", "--device", "cuda"]) == 2  # not --quiet: it stays set
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "CUDA is not available" in err and "Traceback" not in err, err
