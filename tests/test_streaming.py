"""Streamed audits: the same performance and fairness numbers as in memory whatever the chunk size, a
seeded sample that does not depend on the chunk size, the readers of each source, bounded memory, and
one clear line for bad input."""

from __future__ import annotations

import json
import tracemalloc

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

import audit
import hostile
from audit.io import checkpoint
from audit.analyzers.fairness.analyzer import Fairness
from audit.analyzers.performance import duplicates
from audit.analyzers.performance.analyzer import Performance
from audit.cli import main
from audit.core.dataset import concat
from audit.core.encoders import ImageEncoder
from audit.models import MODELS
from audit.core.reservoir import Reservoir
from audit.executor.stream import predict_fn
from audit.io.sources import open_source, read_data

SENSITIVE = ["sex", "race"]
CLASSES = ("<=50K", ">50K")


def adult_like(n: int, seed: int = 0) -> pd.DataFrame:
    """Two features, and a label that favours men (planted); race has no effect on anything."""
    rng = np.random.default_rng(seed)
    sex = rng.choice(["Female", "Male"], n, p=[0.4, 0.6])
    x0, x1 = rng.normal(size=n), rng.normal(size=n)
    male = (sex == "Male").astype(float)
    y = x0 + 0.5 * x1 + male - 0.5 + rng.normal(scale=0.7, size=n) > 0
    return pd.DataFrame({"x0": x0, "x1": x1, "male": male, "sex": sex, "race": rng.choice(["A", "B", "C"], n),
                         "age": rng.integers(18, 80, n), "income": rng.normal(5e4, 1.5e4, n).round(2),
                         "label": np.where(y, CLASSES[1], CLASSES[0])})


def linear_model() -> audit.Model:
    """Reads x0, x1 and male: the planted advantage of men carries into its predictions."""
    layer = torch.nn.Linear(3, 2)
    with torch.no_grad():
        layer.weight[:] = torch.tensor([[-1.0, -0.5, -1.0], [1.0, 0.5, 1.0]])
        layer.bias[:] = torch.tensor([0.25, -0.25])
    return audit.wrap(layer, modality="tabular", classes=CLASSES, feature_names=["x0", "x1", "male"], device="cpu")


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    folder = tmp_path_factory.mktemp("stream")
    frame = adult_like(2000)
    frame.to_parquet(folder / "t.parquet", row_group_size=300)
    frame.to_csv(folder / "t.csv", index=False)
    model = linear_model()
    data = audit.Dataset.from_dataframe(frame, target="label", sensitive=SENSITIVE, classes=CLASSES)
    memory = audit.run(model, data, [Performance(), Fairness(intersections=2)], seed=3)
    return folder, model, memory


def assert_same_numbers(streamed: audit.AuditRun, memory: audit.AuditRun) -> None:
    assert set(streamed.metrics) == set(memory.metrics)
    for name, value in memory.metrics.items():
        assert streamed.metrics[name] == pytest.approx(value, abs=1e-9, nan_ok=True), name
    for name, (low, high) in memory.intervals.items():
        assert streamed.intervals[name] == pytest.approx((low, high), abs=1e-9, nan_ok=True), name
    for analyzer in ("performance", "fairness"):
        for key, expected in memory.result(analyzer).tables.items():
            pd.testing.assert_frame_equal(streamed.result(analyzer).tables[key], expected, check_exact=False,
                                          rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("name,rows", [("t.parquet", 97), ("t.csv", 999)])
def test_streamed_metrics_equal_the_in_memory_ones(table, capsys, name, rows):
    folder, model, memory = table
    source = open_source(folder / name, target="label", sensitive=SENSITIVE)
    streamed = audit.run_stream(model, source, [Performance(), Fairness(intersections=2)], seed=3, chunk_rows=rows)
    assert [r.status for r in streamed.results] == ["ok", "ok"]
    assert_same_numbers(streamed, memory)
    # the planted advantage of men is found, the absent one by race is not
    assert streamed.intervals["fairness.sex.demographic_parity_difference"][0] > 0.15
    assert streamed.intervals["fairness.race.demographic_parity_difference"][0] == 0.0
    assert streamed.data["rows"] == 2000 and streamed.data["source"]["streamed"]
    assert "predict: 2,000 rows in" in capsys.readouterr().err  # the CI log's progress line


def test_sensitive_groups_are_decided_from_the_whole_data(table):
    """Chunks of 40 rows each hold a few ages and incomes: the quartiles and age bins are still the data's."""
    folder, model, _ = table
    frame = pd.read_parquet(folder / "t.parquet")
    analyzers = [Fairness(intersections=1, mitigation=False)]
    data = audit.Dataset.from_dataframe(frame, target="label", sensitive=["age", "income"], classes=CLASSES)
    memory = audit.run(model, data, analyzers)
    source = open_source(folder / "t.parquet", target="label", sensitive=["age", "income"])
    streamed = audit.run_stream(model, source, analyzers, chunk_rows=40)
    assert streamed.metrics == pytest.approx(memory.metrics, abs=1e-9)
    bins = streamed.result("fairness").details["bins"]
    assert bins == memory.result("fairness").details["bins"]
    assert bins["income"]["edges"] == pytest.approx(list(np.quantile(frame["income"], [0.25, 0.5, 0.75])))
    assert bins["age"]["rule"] == "fixed age bins"


def test_an_analyzer_that_fails_is_an_error_result_as_in_memory(table):
    folder, model, _ = table
    wrong = Fairness(bins={"height": (1.5,)})
    data = audit.Dataset.from_dataframe(pd.read_csv(folder / "t.csv"), target="label", sensitive=SENSITIVE)
    memory = audit.run(model, data, [Performance(), wrong])
    streamed = audit.run_stream(model, open_source(folder / "t.csv", target="label", sensitive=SENSITIVE),
                                [Performance(), wrong])
    assert [r.status for r in streamed.results] == [r.status for r in memory.results] == ["ok", "error"]
    assert streamed.results[1].error == memory.results[1].error
    assert "bins given for ['height'], which are not sensitive columns" in streamed.results[1].error


def rows_of(sample: audit.Dataset) -> np.ndarray:
    return sample.inputs["row"].to_numpy()


@pytest.mark.parametrize("seed", [0, 1])
def test_the_reservoir_sample_does_not_depend_on_the_chunk_size(seed):
    frame = pd.DataFrame({"row": np.arange(1000)})
    data = audit.Dataset.from_dataframe(frame.assign(y=np.arange(1000) % 2), target="y")
    samples = []
    for size in (1, 13, 100, 1000):
        reservoir = Reservoir(50, seed, take=audit.Dataset.subset, join=concat)
        for start in range(0, 1000, size):
            reservoir.add(data.subset(np.arange(start, min(start + size, 1000))), start, min(size, 1000 - start))
        samples.append(rows_of(reservoir.sample()))
    for sample in samples[1:]:
        np.testing.assert_array_equal(sample, samples[0])
    assert len(samples[0]) == 50 and np.all(np.diff(samples[0]) > 0)  # distinct rows, in data order
    other = Reservoir(50, seed + 7, take=audit.Dataset.subset, join=concat)
    other.add(data, 0, 1000)
    assert len(set(rows_of(other.sample())) & set(samples[0])) < 20  # another seed, another sample


def test_the_reservoir_sample_is_uniform():
    """Over 2,000 seeds, each of 40 rows enters a sample of 8 with probability 1/5 (within 4.5 sigma)."""
    counts = np.zeros(40)
    for seed in range(2000):
        reservoir = Reservoir(8, seed, take=lambda a, i: a[i], join=np.concatenate)
        for start in range(0, 40, 6):
            reservoir.add(np.arange(start, min(start + 6, 40)), start, min(6, 40 - start))
        counts[reservoir.sample()] += 1
    expected, sigma = 2000 * 0.2, np.sqrt(2000 * 0.2 * 0.8)
    assert np.all(np.abs(counts - expected) < 4.5 * sigma), counts


def test_a_streamed_run_samples_the_per_example_analyzers_the_same_whatever_the_chunk_size(table):
    folder, model, _ = table
    sources = [open_source(folder / "t.csv", target="label", sensitive=["sex"]) for _ in range(2)]
    runs = [audit.run_stream(model, s, ["explanation_quality"], samples=6, seed=1, chunk_rows=rows)
            for s, rows in zip(sources, (37, 1500))]
    first, second = (r.result("explanation_quality") for r in runs)
    assert first.status == "ok", first.error
    assert runs[0].data["source"]["sample_rows"] == 6
    assert first.metrics == second.metrics


def test_readers_give_chunks_of_the_asked_size_that_add_up_to_the_file(table):
    folder, _, _ = table
    whole = read_data(folder / "t.csv", target="label", sensitive=SENSITIVE, classes=CLASSES)
    for name in ("t.csv", "t.parquet"):
        source = open_source(folder / name, target="label", sensitive=SENSITIVE)
        chunks = list(source.chunks(CLASSES, 450))
        assert [len(c) for c in chunks] == [450] * 4 + [200]
        joined = concat(chunks)
        pd.testing.assert_frame_equal(joined.inputs, whole.inputs)
        pd.testing.assert_frame_equal(joined.sensitive, whole.sensitive)
        np.testing.assert_array_equal(joined.labels, whole.labels)
        census = source.census()
        assert census.rows == 2000 and census.classes == CLASSES


@pytest.mark.parametrize("compressed", [False, True])
def test_npz_is_read_row_by_row_compressed_or_not(tmp_path, compressed):
    arrays = hostile.images(n=50)
    (np.savez_compressed if compressed else np.savez)(tmp_path / "i.npz", **arrays)
    source = open_source(tmp_path / "i.npz")
    chunks = list(source.chunks(("0", "1", "2"), 16))
    assert [len(c) for c in chunks] == [16, 16, 16, 2]
    whole = read_data(tmp_path / "i.npz", classes=("0", "1", "2"))
    joined = concat(chunks)
    np.testing.assert_array_equal(joined.inputs, whole.inputs)
    np.testing.assert_array_equal(joined.labels, whole.labels)
    pd.testing.assert_frame_equal(joined.sensitive, whole.sensitive)
    assert source.census().rows == 50 and list(source.census().values.counts) == ["site"]


def write_images(root, sizes=None, mode="L", per_class=4):
    """Class folders 0, 1, 2 of 8x8 images whose brightness encodes their class and index."""
    pixels = {}
    for label in range(3):
        (root / str(label)).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            size = (sizes or {}).get((label, i), (8, 8))
            value = np.full((size[1], size[0]) + (() if mode == "L" else (3,)), 20 * label + i, dtype=np.uint8)
            Image.fromarray(value, mode).save(root / str(label) / f"img{i}.png")
            pixels[label, i] = value
    return pixels


def test_an_image_folder_is_read_in_class_folders(tmp_path):
    pixels = write_images(tmp_path / "imgs", mode="RGB")
    source = open_source(tmp_path / "imgs")
    chunks = list(source.chunks(("0", "1", "2"), 5))
    assert [len(c) for c in chunks] == [5, 5, 2]
    joined = concat(chunks)
    assert joined.classes == ("0", "1", "2") and joined.inputs.shape == (12, 3, 8, 8)
    np.testing.assert_array_equal(joined.labels, np.repeat([0, 1, 2], 4))
    expected = np.stack([pixels[label, i].transpose(2, 0, 1) / 255.0 for label in range(3) for i in range(4)])
    np.testing.assert_allclose(joined.inputs, expected, rtol=1e-6)
    np.testing.assert_array_equal(read_data(tmp_path / "imgs").inputs, joined.inputs)


@pytest.fixture(scope="module")
def image_model_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("models") / "i.pt"
    checkpoint.save(hostile.image_model(), path)
    return path


def test_an_image_folder_is_audited_streamed_as_in_memory(tmp_path, image_model_file):
    write_images(tmp_path / "imgs")
    outputs = []
    for flag in ([], ["--stream"]):
        out = tmp_path / f"r{len(flag)}.json"
        code = main(["report", str(image_model_file), "--data", str(tmp_path / "imgs"), *flag, "--analyzers",
                     "performance", "-o", str(tmp_path / "r.html"), "--json", str(out), "--quiet"])
        assert code in (0, 1)
        outputs.append(json.loads(out.read_text()))
    assert outputs[1]["data"]["source"]["streamed"] and "streamed" not in outputs[0]["data"]["source"]
    assert outputs[1]["metrics"] == pytest.approx(outputs[0]["metrics"], abs=1e-9)


@pytest.mark.parametrize("problem,expected", [
    ("unreadable", r"imgs/1/img2.png: cannot read as an image"),
    ("one class", r"imgs: images of one class only \('0'\)"),
    ("mixed sizes", r"imgs/2/img1.png: image of 6x8 pixels, but .*imgs/0/img0.png is 8x8; .* must share one size"),
    ("empty", r"imgs: no images found; expected the layout"),
])
def test_bad_image_folders_give_one_clear_line(tmp_path, capsys, image_model_file, problem, expected):
    root = tmp_path / "imgs"
    if problem == "one class":
        write_images(root)
        for label in ("1", "2"):
            for f in (root / label).iterdir():
                f.unlink()
            (root / label).rmdir()
    elif problem == "empty":
        root.mkdir()
    else:
        write_images(root, sizes={(2, 1): (6, 8)} if problem == "mixed sizes" else None)
        if problem == "unreadable":
            (root / "1" / "img2.png").write_bytes(b"not a png")
    code = main(["report", str(image_model_file), "--data", str(root), "--stream", "--analyzers", "performance",
                 "-o", str(tmp_path / "r.html"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert __import__("re").search(expected, err), err


def test_the_input_size_limit_applies_only_to_data_read_whole(tmp_path, capsys):
    hostile.table(n=2000).to_csv(tmp_path / "t.csv", index=False)  # 40 KB
    checkpoint.save(hostile.tabular_model(), tmp_path / "t.pt")
    args = ["report", str(tmp_path / "t.pt"), "--data", str(tmp_path / "t.csv"), "--target", "approved",
            "--analyzers", "performance", "-o", str(tmp_path / "r.html"), "--quiet", "--max-input-size", "16K"]
    assert main(args) == 2
    assert "t.csv: " in capsys.readouterr().err
    assert main([*args, "--stream"]) in (0, 1)
    assert (tmp_path / "r.html").exists()


def test_memory_does_not_grow_with_the_rows(tmp_path, monkeypatch):
    """Reading chunks of 500 rows and adding them to the performance and fairness tallies: the peak of memory
    allocated for 6x the rows stays within 1.5x, and no chunk is larger than asked. The duplicate count keeps
    up to EXACT_ROWS row hashes (8 MiB) before it samples them: lowered here, so that both runs are past it."""
    monkeypatch.setattr(duplicates, "EXACT_ROWS", 256)
    model, peaks = linear_model(), []
    for n in (2_000, 12_000):
        adult_like(n).drop(columns="income").to_parquet(tmp_path / f"{n}.parquet", row_group_size=1000)
        source = open_source(tmp_path / f"{n}.parquet", target="label", sensitive=["sex", "race", "age"])
        tracemalloc.start()
        census = source.census(CLASSES, 500)
        tallies = [a.tally(model, census.values, seed=0) for a in (Performance(), Fairness(mitigation=False))]
        start = 0
        for chunk in source.chunks(CLASSES, 500):
            assert len(chunk) <= 500
            proba = predict_fn(model, chunk)
            for tally in tallies:
                tally.add(chunk, proba, start)
            start += len(chunk)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        assert start == n and tallies[1].predicted.sum() == n
    assert peaks[1] < 1.5 * peaks[0], peaks


@pytest.mark.parametrize("name,problem", [("big.csv", "a line longer than 64 MiB"),
                                          ("big.parquet", "cannot read as a table"),
                                          ("big.npz", "cannot read as NPZ")])
def test_data_above_the_input_size_limit_is_streamed_not_refused(tmp_path, capsys, name, problem):
    """A 2 GiB data file (sparse: nothing on disk) is streamed; these hold no table, which one line says."""
    big = tmp_path / name
    with open(big, "wb") as f:
        f.truncate(2 << 30)
    model = tmp_path / "m.pt"
    checkpoint.save(hostile.image_model() if name.endswith(".npz") else hostile.tabular_model(), model)
    code = main(["report", str(model), "--data", str(big), "--target", "approved", "-o", str(tmp_path / "r.html"),
                 "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith(f"error: {big}: ") and problem in err and "limit" not in err, err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("output", ["prediction", "scores"])
def test_predictions_are_streamed_with_the_same_numbers(tmp_path, capsys, output):
    """--predictions: a table of labels, the model's outputs and the sensitive columns, read in chunks of 97."""
    frame = adult_like(1500)
    score = 1 / (1 + np.exp(-(frame["x0"] + 0.5 * frame["x1"] + frame["male"] - 0.5)))
    frame = frame.assign(p1=score.round(6), p0=(1 - score).round(6),
                         predicted=np.where(score > 0.5, CLASSES[1], CLASSES[0]))
    frame.to_csv(tmp_path / "p.csv", index=False)
    columns = {"prediction": "predicted"} if output == "prediction" else {"scores": ["p0", "p1"]}
    options = dict(target="label", sensitive=["sex", "race"], options={"fairness": {"mitigation": False}},
                   **columns)
    memory = audit.from_predictions(tmp_path / "p.csv", **options)
    streamed = audit.from_predictions(tmp_path / "p.csv", stream=True, chunk_rows=97, **options)
    assert [r.status for r in streamed.results] == [r.status for r in memory.results]
    assert streamed.data["source"]["streamed"] and streamed.data["rows"] == 1500
    assert set(streamed.metrics) == set(memory.metrics) and len(memory.metrics) > 10
    assert streamed.metrics == pytest.approx(memory.metrics, abs=1e-9, nan_ok=True)
    for name, bounds in memory.intervals.items():
        assert streamed.intervals[name] == pytest.approx(bounds, abs=1e-9, nan_ok=True), name
    assert streamed.intervals["fairness.sex.demographic_parity_difference"][0] > 0.15  # planted
    assert "predictions: 1,500 rows in" in capsys.readouterr().err


def write_attributed_images(root, n=160, planted=True):
    """Class folders 0 (dark) and 1 (bright) of 4x4 grey images and a metadata.csv naming each one's group and
    site (balanced: each combination of class, group and site has n/8 images). Planted: 4 in 5 class-0 images
    of group b are bright, so a brightness rule says 1 for them wrongly, as often at either site."""
    rng = np.random.default_rng(1)
    rows = []
    for i in range(n):
        label, group, site = i % 2, "ab"[(i // 2) % 2], ("north", "south")[(i // 4) % 2]
        bright = label == 1 or (planted and group == "b" and (i // 8) % 5 != 0)
        (root / str(label)).mkdir(parents=True, exist_ok=True)
        value = np.full((4, 4), 190 if bright else 60, dtype=np.uint8) + rng.integers(0, 10, (4, 4), dtype=np.uint8)
        Image.fromarray(value, "L").save(root / str(label) / f"{i:03d}.png")
        rows.append({"file_name": f"{label}/{i:03d}.png", "group": group, "site": site, "caption": f"image {i}"})
    pd.DataFrame(rows).sample(frac=1, random_state=0).to_csv(root / "metadata.csv", index=False)  # any row order


class Brightness(torch.nn.Module):
    """Class 1 when an image's mean brightness is over one half."""

    def forward(self, x):
        score = 8 * (x.mean(dim=(1, 2, 3)) - 0.5)
        return torch.stack([-score, score], dim=1)


@pytest.mark.parametrize("planted", [True, False])
def test_an_image_folder_with_metadata_is_audited_for_fairness_streamed_as_in_memory(tmp_path, planted):
    write_attributed_images(tmp_path / "imgs", planted=planted)
    model = audit.wrap(Brightness(), modality="image", classes=("0", "1"), device="cpu")
    analyzers = [Performance(), Fairness(intersections=2)]
    data = read_data(tmp_path / "imgs", sensitive=["group", "site"])
    assert list(data.sensitive.columns) == ["group", "site"]
    memory = audit.run(model, data, analyzers, seed=3)
    source = open_source(tmp_path / "imgs", sensitive=["group", "site"])
    streamed = audit.run_stream(model, source, analyzers, seed=3, chunk_rows=7)
    assert [r.status for r in streamed.results] == ["ok", "ok"]
    assert_same_numbers(streamed, memory)
    for metric in ("demographic_parity_difference", "accuracy_difference"):
        low = streamed.intervals[f"fairness.group.{metric}"][0]
        assert (low > 0.2) if planted else (low == 0.0), metric  # the planted disparity is found; without it, not
        assert streamed.intervals[f"fairness.site.{metric}"][0] == 0.0, metric


def test_image_metadata_may_be_parquet_with_paths_in_any_spelling(tmp_path):
    write_attributed_images(tmp_path / "imgs", n=12)
    expected = read_data(tmp_path / "imgs", sensitive=["group", "site"]).sensitive
    table = pd.read_csv(tmp_path / "imgs" / "metadata.csv")
    (tmp_path / "imgs" / "metadata.csv").unlink()
    table.assign(file_name="./" + table["file_name"]).to_parquet(tmp_path / "imgs" / "metadata.parquet")
    source = open_source(tmp_path / "imgs", sensitive=["group", "site"])
    pd.testing.assert_frame_equal(concat(list(source.chunks(("0", "1"), 5))).sensitive, expected)
    assert expected["group"].tolist() == ["a", "b"] * 6  # class 0 (images 0, 2, ..., 10), then class 1
    assert source.census().values.counts["site"].to_dict() == {"north": 8, "south": 4}


@pytest.mark.parametrize("problem,expected", [
    ("no file_name", r"imgs/metadata.csv: column 'file_name' not found .*; columns are: name, group"),
    ("image without a row", r"imgs/metadata.csv: no row for 5 image\(s\) of the folder: 0/000.png, 0/002.png, "
                            r"0/004.png and 2 more$"),
    ("row without an image", r"imgs/metadata.csv: 1 row\(s\) for images not in the folder's class folders: "
                             r"1/999.png$"),
    ("unknown column", r"imgs/metadata.csv: sensitive column 'gender' not found; columns are: file_name, group"),
    ("no metadata", r"imgs: no metadata.csv, so the images carry no sensitive attributes, but 'group' were asked"),
    ("two metadata files", r"imgs: both metadata.csv and metadata.parquet found; keep one$"),
    ("a repeated row", r"imgs/metadata.csv: file_name '0/000.png' is in more than one row; one row per image$"),
])
def test_bad_image_metadata_gives_one_clear_line(tmp_path, capsys, problem, expected):
    root = tmp_path / "imgs"
    write_attributed_images(root, n=10, planted=False)
    table = pd.read_csv(root / "metadata.csv")[["file_name", "group"]]
    if problem == "no file_name":
        table = table.rename(columns={"file_name": "name"})
    elif problem == "image without a row":
        table = table[~table["file_name"].str.startswith("0/")]
    elif problem == "row without an image":
        table = pd.concat([table, pd.DataFrame({"file_name": ["1/999.png"], "group": ["a"]})])
    elif problem == "a repeated row":
        table = pd.concat([table, table[table["file_name"] == "0/000.png"]])
    elif problem == "two metadata files":
        table.to_parquet(root / "metadata.parquet")
    table.to_csv(root / "metadata.csv", index=False)
    if problem == "no metadata":
        (root / "metadata.csv").unlink()
    config = {"in_channels": 1, "height": 4, "width": 4, "num_classes": 2, "channels": [2], "hidden": 4}
    task = audit.Task(modality="image", classes=("0", "1"), encoder=ImageEncoder(shape=(1, 4, 4)))
    checkpoint.save(audit.Model(MODELS.create("cnn", **config), task, architecture="cnn", config=config, device="cpu"),
                    tmp_path / "m.pt")
    code = main(["report", str(tmp_path / "m.pt"), "--data", str(root), "--stream", "--sensitive",
                 "gender" if problem == "unknown column" else "group", "--analyzers", "performance,fairness",
                 "-o", str(tmp_path / "r.html"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert __import__("re").search(expected, err.strip()), err
