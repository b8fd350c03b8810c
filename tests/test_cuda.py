"""A default audit on a CUDA GPU gives the CPU's numbers: an image, a table and a text model, every default
analyzer, the same seed. Marked `cuda`: deselected where torch sees no GPU (tests/conftest.py)."""

from __future__ import annotations

import math

import pytest

import audit

pytestmark = pytest.mark.cuda

SAMPLES = 16
#: A GPU rounds differently: a per-example metric may move by an example or two of SAMPLES whose decision sits on
#: a boundary, a continuous one by a few percent; a whole-data metric (every row predicted) by rounding only.
PER_EXAMPLE = 2 / SAMPLES
RELATIVE = 0.05


def metrics_on(model: audit.Model, data: audit.Dataset, device: str) -> tuple[dict[str, float], dict[str, str]]:
    run = audit.run(model, data, seed=0, samples=SAMPLES, device=device)
    assert str(model.device).startswith(device) and next(model.module.parameters()).device.type == device
    return ({k: v for r in run.results for k, v in r.metrics.items()}, {r.analyzer: r.status for r in run.results})


@pytest.mark.parametrize("fixture, dataset", [("digits_cnn", "digits"), ("adult_mlp", "adult"),
                                              ("reviews_lstm", "reviews")])
def test_a_default_audit_on_cuda_gives_the_cpu_numbers(fixture, dataset, request):
    model = request.getfixturevalue(fixture)
    data = audit.load_dataset(dataset, "test").sample(200, seed=0)
    device = model.device
    try:
        cpu, cpu_status = metrics_on(model, data, "cpu")
        gpu, gpu_status = metrics_on(model, data, "cuda")
    finally:
        model.to(device)  # the fixtures are shared with the other tests
    assert gpu_status == cpu_status and set(cpu_status.values()) <= {"ok", "skipped"}, (cpu_status, gpu_status)
    assert gpu.keys() == cpu.keys()
    far = {k: (cpu[k], gpu[k]) for k in cpu
           if not (math.isnan(cpu[k]) and math.isnan(gpu[k]))
           and not math.isclose(cpu[k], gpu[k], rel_tol=RELATIVE, abs_tol=PER_EXAMPLE)}
    assert not far, far
    assert math.isclose(cpu["performance.accuracy"], gpu["performance.accuracy"], abs_tol=1 / len(data))
