"""The Ray engine gives the local engine's numbers to the last digit: a table, an image and a text
model audited by the default analyzers on both, on one local Ray of 2 CPUs.

Batches are made small (16 rows a prediction batch, captum chunks of a few examples) so that every
map of the audit has several batches, each one Ray task; the engine's task count shows which
batch functions Ray ran."""

from __future__ import annotations

import copy
import json
import sys

import numpy as np
import pytest
import ray
from hf_helpers import random_bert, word_texts

import audit
from audit.core import model as model_module
from audit.methods.attributions import captum_methods
from audit.methods.attributions import shap_method
from audit.cli import main as cli_main
from audit.engine import batch_seed, named
from audit._util.errors import AuditInputError
from audit.models import train
from audit.models.training import TrainConfig
from audit.engine.ray import RayEngine

SMALL = {  # architecture, dataset, model options, training rows
    "table": ("mlp", "adult", None, 2000),
    "image": ("cnn", "digits", None, 1000),
    "text": ("lstm", "reviews", {"embed_dim": 16, "hidden": 16}, 2000),
}
OPTIONS = {
    "saliency": {"samples": 8}, "shap": {"samples": 16, "max_evals": 30}, "lime": {"samples": 4, "num_samples": 100},
    "explanation_quality": {"samples": 4}, "robustness": {"samples": 40, "square_queries": 20, "apgd_steps": 4,
                                                          "apgd_targets": 1, "flip_refine": 1},
}
# Batch functions each audit must hand to Ray: the prediction pass, captum's chunks, SHAP's and the attacks' (which
# attack only the correctly classified examples: robustness samples enough for two batches of them).
ON_RAY = {
    "table": {"logits_batch", "attribute_chunk", "deep_class", "attack_batch"},
    "image": {"logits_batch", "attribute_chunk", "deep_class", "attack_batch"},
    "text": {"logits_batch", "attribute_chunk", "tokens_batch"},  # text attacks are word swaps, scored in the map
}


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def small_models() -> dict[str, audit.Model]:
    models = {}
    for kind, (architecture, dataset, options, rows) in SMALL.items():
        train_split, validation = (audit.load_dataset(dataset, s).sample(n, seed=0)
                                   for s, n in (("train", rows), ("validation", 300)))
        models[kind] = train(architecture, train_split, validation, validation,
                             config=TrainConfig(epochs=2, patience=2), model_config=options, quiet=True).model
    return models


def audited(model: audit.Model, kind: str, engine) -> audit.AuditRun:
    model = copy.copy(model)  # its own prediction cache
    model.batch_size = 16
    data = audit.load_dataset(SMALL[kind][1], "test").sample(64, seed=1)
    options = copy.deepcopy(OPTIONS)
    if kind == "text":
        options["shap"]["samples"] = 4  # texts are slow to explain: two tasks of two
    return audit.run(model, data, options=options, seed=3, engine=engine)


@pytest.mark.parametrize("kind", list(SMALL))
def test_ray_gives_the_local_engines_numbers(local_ray, small_models, kind, monkeypatch):
    monkeypatch.setattr(captum_methods, "MAX_ROWS_PER_PASS", 200)  # captum chunks of 4 to 200 examples
    monkeypatch.setattr(model_module, "FORWARDS_PER_TASK", 1)  # a prediction task per forward pass
    monkeypatch.setattr(shap_method, "TEXTS_PER_TASK", 2)
    local = audited(small_models[kind], kind, "local")
    engine = RayEngine()
    remote = audited(small_models[kind], kind, engine)
    assert ON_RAY[kind] <= set(engine.tasks), engine.tasks
    assert [r.status for r in local.results] == [r.status for r in remote.results]
    assert all(r.status in ("ok", "skipped") for r in local.results), [(r.analyzer, r.error) for r in local.results]
    assert local.metrics.keys() == remote.metrics.keys()
    for name, value in local.metrics.items():
        assert np.array_equal(value, remote.metrics[name], equal_nan=True), name
    for mine, theirs in zip(local.results, remote.results):
        assert mine.arrays.keys() == theirs.arrays.keys()
        for name, array in mine.arrays.items():  # attributions, SHAP values, LIME weights, attack outcomes
            array = np.asarray(array)
            assert np.array_equal(array, theirs.arrays[name], equal_nan=array.dtype.kind == "f"), \
                f"{mine.analyzer}.{name}"
        for name, table in mine.tables.items():
            assert table.equals(theirs.tables[name]), f"{mine.analyzer}.{name}"
    assert remote.provenance["engine"] == "ray" and local.provenance["engine"] == "local"


def test_a_hugging_face_model_and_its_tokenizer_run_on_ray_workers(local_ray, monkeypatch):
    # The model, with its fast tokenizer (a Rust object) and transformers module, must pickle to the workers;
    # their passes (attention mask from the ids, padding trimmed) give the local engine's numbers. (SHAP's text
    # tasks, which encode texts on the workers, cost seconds of shap import per worker; checked by hand.)
    monkeypatch.setattr(model_module, "FORWARDS_PER_TASK", 1)
    monkeypatch.setattr(captum_methods, "MAX_ROWS_PER_PASS", 100)  # IG's 50 steps: two texts a task
    model = random_bert()
    model.batch_size = 8
    data = word_texts(16)
    options = {"saliency": {"samples": 8}}
    local = audit.run(copy.copy(model), data, ["performance", "saliency"], options=options, seed=3, engine="local")
    engine = RayEngine()
    remote = audit.run(copy.copy(model), data, ["performance", "saliency"], options=options, seed=3, engine=engine)
    assert {"logits_batch", "attribute_chunk"} <= set(engine.tasks), engine.tasks
    assert [r.status for r in remote.results] == ["ok", "ok"], [(r.analyzer, r.error) for r in remote.results]
    assert local.metrics == remote.metrics
    for name, array in local.results[1].arrays.items():
        assert np.array_equal(np.asarray(array), remote.results[1].arrays[name]), name


def test_an_error_in_a_task_comes_back_as_itself(local_ray):
    def check(shared, batch):
        if batch == 1:
            raise AuditInputError(f"batch {batch} is bad")
        return batch

    with pytest.raises(AuditInputError, match=r"^batch 1 is bad$"):
        list(RayEngine().map(check, None, [0, 1, 2]))


def test_batches_have_seeds_of_their_own():
    seeds = [batch_seed(7, i) for i in range(1000)]
    assert seeds[0] == 7  # work that fits one batch draws what it drew before
    assert len(set(seeds)) == 1000 and all(0 <= s < 2**32 for s in seeds)
    assert batch_seed(8, 1) != seeds[1]


def test_report_on_ray_from_the_command_line(local_ray, small_models, tmp_path):
    checkpoint = tmp_path / "adult.pt"
    audit.save_model(small_models["table"], checkpoint)
    out = tmp_path / "run.json"
    code = cli_main(["report", str(checkpoint), "--engine", "ray", "--analyzers", "performance", "--quiet",
                     "-o", str(tmp_path / "run.html"), "--json", str(out)])
    assert code in (0, 1)
    assert json.loads(out.read_text())["provenance"]["engine"] == "ray"


def test_engine_options_are_checked(capsys, tmp_path, monkeypatch):
    assert cli_main(["report", "missing.pt", "--ray-address", "auto"]) == 2  # --engine local is the default
    assert "--ray-address goes with --engine ray" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    engine = named("ray")
    with pytest.raises(AuditInputError, match=r'pip install "torch-model-audit\[ray\]"'):
        list(engine.map(lambda shared, batch: batch, None, [1, 2]))
