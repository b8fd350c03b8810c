"""The per-example table (`run.examples()`, `audit report --examples FILE.parquet`): its robustness columns equal
the robustness result's numbers and find the planted fragile and sturdy rows; its prediction and label columns are
the model's; a streamed run's file equals the in-memory run's on the same sample and has every row; names from
data survive; a bad path is one line, before the work."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import torch

import audit
import hostile
from audit.cli import main
from audit.executor import examples as examples_module
from audit.executor.stream import run_stream
from audit.io import checkpoint
from audit.io.sources import open_source

CLASSES = ("no", "yes")
FEATURES = ["x0", "x1", "flag"]
# Few steps and queries: a linear model is broken by the first step that can break it.
QUICK = {"robustness": {"steps": 3, "sweep": (0.25, 1.0, 5.0), "square_queries": 10, "apgd_steps": 2,
                        "apgd_targets": 1, "flip_refine": 2}, "lime": {"num_samples": 100}}
PER_EXAMPLE = ["performance", "robustness", "saliency", "shap", "lime"]
HOSTILE = 'g`|<script>alert(1)</script>\n"; DROP TABLE x;--\u202e.row'


def linear_model(weights=(0.2, 1.5, 0.1)) -> audit.Model:
    """The logit of "yes" minus that of "no" is 2 * (weights . x) - 0.5: `weights` says which input drives it."""
    layer = torch.nn.Linear(3, 2)
    w = torch.tensor(weights)
    with torch.no_grad():
        layer.weight[:] = torch.stack([-w, w])
        layer.bias[:] = torch.tensor([0.25, -0.25])
    return audit.wrap(layer, modality="tabular", classes=CLASSES, feature_names=FEATURES, device="cpu")


def planted_frame(n: int = 60, seed: int = 0) -> pd.DataFrame:
    """Rows labelled as the model predicts them, but for the last: wrong. Row 0 lies on the boundary (any attack
    flips it at the smallest epsilon), row 1 far from it (none can within the sweep)."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"x0": rng.normal(size=n), "x1": rng.normal(size=n), "flag": rng.integers(0, 2, n),
                          "group": rng.choice(["a", "b"], n), HOSTILE: rng.choice(["p", HOSTILE], n)})
    frame.loc[0, ["x0", "x1", "flag"]] = (0.0, 0.25 / 1.5 + 1e-3, 0)  # a margin of 0.003
    frame.loc[1, ["x0", "x1", "flag"]] = (0.0, 20.0, 1)
    margin = 2 * (0.2 * frame["x0"] + 1.5 * frame["x1"] + 0.1 * frame["flag"]) - 0.5
    frame["label"] = np.where(margin > 0, "yes", "no")
    frame.loc[n - 1, "label"] = "no" if frame.loc[n - 1, "label"] == "yes" else "yes"
    return frame


def dataset(frame: pd.DataFrame) -> audit.Dataset:
    return audit.Dataset.from_dataframe(frame, target="label", sensitive=["group", HOSTILE], classes=CLASSES)


@pytest.fixture(scope="module")
def memory():
    model, data = linear_model(), dataset(planted_frame())
    return model, data, audit.run(model, data, PER_EXAMPLE, seed=3, options=QUICK)


def test_robustness_columns_are_the_results_numbers_and_find_the_planted_rows(memory, tmp_path):
    _, data, run = memory
    run.save_examples(tmp_path / "e.parquet")
    table = pd.read_parquet(tmp_path / "e.parquet").set_index("row")
    robustness = run.result("robustness")
    assert list(table.index) == list(range(len(data)))
    np.testing.assert_array_equal(table["robustness.flip_epsilon"], robustness.arrays["flip_epsilon"])
    assert table["robustness.robust"].astype(bool).mean() == run.metrics["robustness.robust_accuracy"]
    assert table["robustness.corruptions_survived"].mean() == pytest.approx(
        run.metrics["robustness.corruption_accuracy"], abs=1e-12)
    correct = table["robustness.correct"].astype(bool)
    assert correct.mean() == run.metrics["robustness.clean_accuracy"]
    assert np.median(table.loc[correct, "robustness.flip_epsilon"]) == run.metrics["robustness.median_flip_epsilon"]
    at = int(np.searchsorted(robustness.arrays["epsilons"], robustness.details["epsilon"]))
    pgd_broken = ~robustness.arrays["pgd_correct"][:, at] & correct.to_numpy()
    assert ((table["robustness.pgd_broken_at"] <= robustness.details["epsilon"]).to_numpy()
            == pgd_broken | ~correct.to_numpy()).all()
    smallest = robustness.arrays["epsilons"][0]
    assert table.loc[0, "robustness.broken_at"] == smallest and not table.loc[0, "robustness.robust"]
    assert np.isnan(table.loc[1, "robustness.broken_at"]) and table.loc[1, "robustness.robust"]
    assert np.isinf(table.loc[1, "robustness.flip_epsilon"])
    wrong = len(data) - 1  # mislabelled: wrong before any attack
    assert not table.loc[wrong, "robustness.correct"] and table.loc[wrong, "robustness.broken_at"] == 0.0
    assert np.isnan(table.loc[wrong, "robustness.flip_epsilon"])


def test_prediction_label_and_groups_are_the_models_and_datas(memory):
    model, data, run = memory
    table = run.examples()
    proba = model.predict_proba(data)
    assert list(table["prediction"]) == [CLASSES[i] for i in proba.argmax(1)]
    assert list(table["label"]) == [CLASSES[i] for i in data.labels]
    np.testing.assert_allclose(table["probability"], proba.max(1))
    assert list(table[f"group.{HOSTILE}"]) == list(data.sensitive[HOSTILE])
    document = run.to_json()  # the per-example columns stay out of the JSON
    for column in ("robustness.broken_at", "saliency.saliency.top_features", "shap.top_values", "lime.fit_r2"):
        assert column in table and column not in document


def test_explained_rows_carry_their_top_features_and_the_others_nulls(memory):
    _, data, run = memory
    table = run.examples()
    for analyzer, column in (("saliency", "saliency.saliency.top_features"), ("shap", "shap.top_features"),
                             ("lime", "lime.top_features")):
        rows = run.result(analyzer).arrays["samples" if analyzer == "saliency" else "rows"]
        explained = table[column].notna()
        assert sorted(np.flatnonzero(explained)) == sorted(rows), analyzer
        assert all(set(features) <= set(FEATURES) for features in table.loc[explained, column])
    # x1 carries 1.5 of the weight, x0 0.2 and flag 0.1: the gradient names x1 first on every row
    assert {f[0] for f in table["saliency.saliency.top_features"].dropna()} == {"x1"}
    values = table["saliency.saliency.top_values"].dropna()
    assert all(abs(v[0]) >= abs(v[-1]) for v in values)


def test_the_top_feature_follows_the_planted_weight():
    data = dataset(planted_frame())
    run = audit.run(linear_model(weights=(1.5, 0.2, 0.1)), data, ["saliency"], options={"saliency": {
        "methods": ("saliency",)}})
    assert {f[0] for f in run.examples()["saliency.saliency.top_features"].dropna()} == {"x0"}


def test_a_streamed_file_equals_the_in_memory_one_on_the_same_sample(memory, tmp_path):
    model, data, run = memory
    frame = planted_frame()
    frame.to_parquet(tmp_path / "d.parquet")
    source = open_source(tmp_path / "d.parquet", target="label", sensitive=["group", HOSTILE])
    streamed = run_stream(model, source, PER_EXAMPLE, seed=3, options=QUICK, chunk_rows=17, examples=True)
    run.save_examples(tmp_path / "memory.parquet")
    streamed.save_examples(tmp_path / "streamed.parquet")
    memory_table, streamed_table = (pq.read_table(tmp_path / f) for f in ("memory.parquet", "streamed.parquet"))
    assert streamed_table.equals(memory_table)
    assert f"group.{HOSTILE}" in streamed_table.column_names
    pd.testing.assert_frame_equal(streamed.examples(), run.examples())


def test_a_streamed_file_has_every_row_and_the_sample_s_outcomes(tmp_path, monkeypatch):
    monkeypatch.setattr(examples_module, "BATCH_ROWS", 50)  # batches without a sampled row keep the schema
    model, frame = linear_model(), planted_frame(n=300)
    frame.to_parquet(tmp_path / "d.parquet")
    source = open_source(tmp_path / "d.parquet", target="label", sensitive=["group"])
    options = {"robustness": {**QUICK["robustness"], "samples": 20}}
    streamed = run_stream(model, source, ["robustness"], seed=1, options=options, chunk_rows=64, examples=True)
    streamed.save_examples(tmp_path / "e.parquet")
    table = pd.read_parquet(tmp_path / "e.parquet").set_index("row")
    assert list(table.index) == list(range(300))
    assert list(table["prediction"]) == [CLASSES[i] for i in model.predict_proba(dataset(frame)).argmax(1)]
    sampled = table["robustness.robust"].notna()
    assert sampled.sum() == 20 and list(table.index[sampled]) == list(streamed.examples().index)
    assert table.loc[sampled, "robustness.robust"].astype(bool).mean() == \
        streamed.metrics["robustness.robust_accuracy"]
    assert pq.ParquetFile(tmp_path / "e.parquet").metadata.num_row_groups == 6


def test_a_streamed_run_without_examples_says_how_to_keep_them(tmp_path):
    planted_frame().to_parquet(tmp_path / "d.parquet")
    source = open_source(tmp_path / "d.parquet", target="label")
    streamed = run_stream(linear_model(), source, ["performance"], chunk_rows=20)
    assert len(streamed.examples()) == 0  # no per-example analyzer: no sample
    with pytest.raises(audit.AuditInputError, match="examples=True"):
        streamed.save_examples(tmp_path / "e.parquet")


def test_image_attributions_name_pixels():
    arrays = hostile.images(n=12)
    data = audit.Dataset.from_arrays(arrays["x"][:, None], arrays["y"], classes=("0", "1", "2"))
    run = audit.run(hostile.image_model(), data, ["saliency", "lime"], samples=4,
                    options={"lime": {"num_samples": 50}})
    for column in ("saliency.saliency.top_features", "lime.top_features"):
        features = run.examples()[column].dropna()
        assert len(features) == 4
        assert all(len(f) == 5 and all(0 <= int(p) < 8 for name in f for p in name.split(",")) for f in features)


def test_the_cli_writes_every_row_and_refuses_a_bad_path_before_the_work(tmp_path, capsys):
    checkpoint.save(hostile.tabular_model(), tmp_path / "m.pt")
    frame = hostile.table(n=40)
    frame.to_csv(tmp_path / "d.csv", index=False)
    args = ["report", str(tmp_path / "m.pt"), "--data", str(tmp_path / "d.csv"), "--target", "approved",
            "--sensitive", "group", "--analyzers", "performance,robustness", "--samples", "6", "--set",
            "robustness.steps=2", "--set", "robustness.square_queries=5", "--quiet", "-o", str(tmp_path / "r.html")]
    for stream in ([], ["--stream"]):
        out = tmp_path / f"e{len(stream)}.parquet"
        assert main([*args, *stream, "--examples", str(out)]) in (0, 1)
        table = pd.read_parquet(out)
        assert len(table) == 40 and table["robustness.robust"].notna().sum() == 6
        assert list(table["label"]) == list(frame["approved"])
        assert list(table["group.group"]) == list(frame["group"])
    capsys.readouterr()
    (tmp_path / "m.pt").write_bytes(b"not a checkpoint")  # the path is refused before the model is read
    assert main([*args, "--examples", str(tmp_path / "missing" / "e.parquet")]) == 2
    err = capsys.readouterr().err.strip()
    assert "--examples" in err and "does not exist" in err and len(err.splitlines()) == 1


def test_predictions_alone_cannot_give_per_example_results(tmp_path, capsys):
    hostile.table(n=10).assign(predicted="yes").to_csv(tmp_path / "p.csv", index=False)
    code = main(["report", "--predictions", str(tmp_path / "p.csv"), "--target", "approved", "--prediction-column",
                 "predicted", "--examples", str(tmp_path / "e.parquet"), "-o", str(tmp_path / "r.html")])
    assert code == 2 and "--examples needs the model" in capsys.readouterr().err


def test_text_rows_carry_each_attacks_outcome():
    """A model that says "yes" exactly when "terrible" occurs: swapping it for a synonym flips the first text
    (one word); the second is wrong to begin with, so no attack applies to it."""
    from test_robustness_text import keyed_model

    texts = ["The movie was terrible tonight, and long.", "The movie was long tonight."]
    data = audit.Dataset.from_arrays(np.array(texts, dtype=object), np.array(["yes", "yes"]), classes=CLASSES)
    table = audit.run(keyed_model("terrible"), data, ["robustness"]).examples()
    assert table["robustness.correct"].tolist() == [True, False]
    assert table.loc[0, "robustness.synonym_flipped"] and table.loc[0, "robustness.synonym_words_changed"] == 1
    assert table.loc[1, "robustness.synonym_flipped"] is None
    assert np.isnan(table.loc[1, "robustness.synonym_words_changed"])
    assert table.loc[1, "robustness.corruptions_survived"] == 0.0  # wrong under every typo level too
