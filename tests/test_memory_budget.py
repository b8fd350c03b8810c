"""A memory budget: every analyzer's passes shrink to fit it instead of the process growing, with the same
numbers as unbounded passes, and the run says which passes shrank; the budget's own reading of the machine."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import audit
from audit._util import memory as budget
from audit.cli import main
from audit.methods.memory import PEAK_FACTOR, activation_bytes
from audit.methods.robustness.attacks import fgsm
from audit.methods.robustness.domain import input_domain

CLASSES = ["a", "b", "c"]
SIDE = 12
BOUND_ROWS = 6  # the rows a gradient pass may hold under the small budget
METHODS = ["integrated_gradients", "saliency", "occlusion", "grad_cam"]  # deterministic: chunks change no value


def small_cnn() -> audit.Model:
    torch.manual_seed(0)
    module = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
                           nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(32, len(CLASSES))).eval()
    return audit.wrap(module, modality="image", classes=CLASSES, input_shape=(3, SIDE, SIDE))


def images(rows: int) -> audit.Dataset:
    rng = np.random.default_rng(0)
    return audit.Dataset.from_arrays(rng.random((rows, 3, SIDE, SIDE), dtype=np.float32),
                                     rng.integers(0, len(CLASSES), rows), classes=CLASSES)


def held_to(monkeypatch, room: int | None) -> int:
    """Reads the process as holding all of its 1 GiB budget but `room` bytes (None: all of it free)."""
    limit = 1 << 30
    monkeypatch.setattr(budget, "resident_bytes", lambda: limit - (limit if room is None else room))
    return limit


def audited(model, data, monkeypatch, room: int | None) -> tuple[audit.AuditRun, list[int]]:
    """A run of the explanation analyzers within `room` bytes, and the rows of each forward pass they made
    (copies of the module the explainers make keep the hook)."""
    limit = held_to(monkeypatch, room)
    passes: list[int] = []
    hook = model.module.register_forward_pre_hook(lambda m, args: passes.append(len(args[0])))
    try:
        run = audit.run(model, data, ["saliency", "shap", "lime"], max_memory=limit,
                        options={"saliency": {"methods": METHODS, "samples": 8}, "shap": {"background": 4},
                                 "lime": {"num_samples": 200}})
    finally:
        hook.remove()
    return run, passes


def test_passes_shrink_to_the_budget_with_the_unbounded_numbers(monkeypatch, capsys):
    model, data = small_cnn(), images(8)
    per_row = activation_bytes(model, model.encode(data), backward=True)
    small, passes = audited(model, data, monkeypatch, PEAK_FACTOR * per_row * BOUND_ROWS)
    large, big_passes = audited(model, data, monkeypatch, None)
    # shap's DeepExplainer holds one instance against its 4 background rows at least: 8 rows
    assert max(passes) <= 8 < max(big_passes), (passes, big_passes)
    bounded, reference = (dict((r.analyzer, r) for r in run.results) for run in (small, large))
    for name, arrays in {"saliency": [f"attributions.{m}" for m in METHODS], "shap": ["values"],
                         "lime": ["values"]}.items():
        assert bounded[name].status == reference[name].status == "ok"
        for key in arrays:
            np.testing.assert_allclose(bounded[name].arrays[key], reference[name].arrays[key], rtol=1e-5, atol=1e-6)
    shrunk = [w for w in bounded["saliency"].warnings if "memory budget" in w]
    assert len(shrunk) == len(METHODS) and f"passes of {BOUND_ROWS} rows instead of" in shrunk[0]
    assert any("shap (DeepExplainer): passes of" in w for w in bounded["shap"].warnings)
    assert any(w.startswith("lime: passes of") for w in bounded["lime"].warnings)
    assert not any("memory budget" in w for r in large.results for w in r.warnings)
    assert "memory: integrated_gradients: passes of 6 rows" in capsys.readouterr().err


def test_attack_batches_shrink_with_the_same_adversarial_examples(monkeypatch):
    model, data = small_cnn(), images(20)
    x, y = model.encode(data), torch.as_tensor(model.labels(data))
    domain = input_domain(model, data, x)
    per_row = activation_bytes(model, x, backward=True)
    batches: list[int] = []
    hook = model.module.register_forward_pre_hook(lambda m, args: batches.append(len(args[0])))
    try:
        with budget.noted() as notes:
            held_to(monkeypatch, PEAK_FACTOR * per_row * 5)
            with budget.limited(1 << 30):
                small = fgsm(model, x, y, 0.1, domain)
        shrunk = batches[:]
        held_to(monkeypatch, None)
        with budget.limited(1 << 30):
            large = fgsm(model, x, y, 0.1, domain)
    finally:
        hook.remove()
    assert max(shrunk[1:]) == 5 and max(batches[len(shrunk):]) == 20  # after the probe passes of 1 and 2 rows
    torch.testing.assert_close(small, large)
    assert notes == [notes[0]] and notes[0].startswith("attacks: passes of 5 rows instead of 20 ")


@pytest.mark.parametrize("value", ["lots", "-1G", "10M"])
def test_a_bad_max_memory_is_one_line(capsys, value):
    assert main(["report", "missing.pt", "--max-memory", value, "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--max-memory" in err and "Traceback" not in err, err


def test_a_bad_max_memory_is_refused_by_the_api():
    with pytest.raises(audit.AuditInputError, match="too small"):
        audit.run(small_cnn(), images(4), ["performance"], max_memory="100M")
    with pytest.raises(audit.AuditInputError, match="a size such as 2G"):
        audit.run(small_cnn(), images(4), ["performance"], max_memory=2.5)


def test_the_default_budget_is_a_share_of_what_is_available(monkeypatch):
    monkeypatch.setattr(budget, "resident_bytes", lambda: 1 << 30)
    monkeypatch.setattr(budget, "available_bytes", lambda: 8 << 30)
    with budget.limited() as limit:
        assert limit == budget.budget() == (1 << 30) + int(budget.DEFAULT_SHARE * (8 << 30))
    with budget.limited("2GB"):
        assert budget.budget() == 2 << 30 and budget.headroom() == 1 << 30


def test_available_memory_is_lowered_to_the_cgroup_room(tmp_path):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal: 16000000 kB\nMemFree: 1000 kB\nMemAvailable: 8000000 kB\n")
    root = tmp_path / "cgroup"
    (root / "job" / "step").mkdir(parents=True)
    (root / "job" / "memory.max").write_text("3221225472\n")  # 3 GiB, of which 1 GiB is used
    (root / "job" / "memory.current").write_text("1073741824\n")
    (root / "job" / "step" / "memory.max").write_text("max\n")
    own = "0::/job/step\n"
    assert budget.cgroup_room(root, own) == 2 << 30
    v1 = tmp_path / "v1"
    (v1 / "memory" / "job").mkdir(parents=True)
    (v1 / "memory" / "job" / "memory.limit_in_bytes").write_text(str(2**63 - 4096))  # v1's "no limit"
    assert budget.cgroup_room(v1, "4:memory:/job\n") is None
    (v1 / "memory" / "job" / "memory.limit_in_bytes").write_text(str(1 << 30))
    (v1 / "memory" / "job" / "memory.usage_in_bytes").write_text(str(1 << 28))
    assert budget.cgroup_room(v1, "4:memory:/job\n") == 3 << 28
    assert budget.available_bytes(tmp_path / "none", meminfo) == 8000000 * 1024
