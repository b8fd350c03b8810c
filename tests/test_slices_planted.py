"""Slice discovery on data with a planted failure: a table, an image folder with one washed-out site, and text.
Each is found and named in words; the same data without the failure gets no slice."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import torch
from PIL import Image

import audit
from audit.analyzers.slices.analyzer import Slices
from audit.core.analyzer import judged
from audit.core.dataset import Dataset
from audit.executor.predictions import Predictions
from audit.io.sources import read_data
from audit.policy.thresholds import DEFAULT_VALUES

CLASSES = ("no", "yes")


def planted_table(*, planted: bool, n: int = 6000, seed: int = 0) -> tuple[Dataset, np.ndarray]:
    """Four inputs (two categorical, a numeric, an age) and a sensitive column; predictions right 85% of the time,
    and in the slice color = red and shape = star (about 6% of rows) right only 50% of the time when planted."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"color": rng.choice(["red", "green", "blue", "grey"], n),
                          "shape": rng.choice(["star", "ring", "dot", "bar"], n),
                          "weight": rng.normal(70, 12, n).round(1), "age": rng.integers(18, 80, n)})
    labels = rng.integers(0, 2, n)
    slice_ = (frame["color"] == "red") & (frame["shape"] == "star")
    wrong = rng.random(n) > np.where(slice_ & planted, 0.5, 0.85)
    predicted = np.where(wrong, 1 - labels, labels)
    proba = np.column_stack([1 - predicted, predicted]).astype(float)
    sensitive = pd.DataFrame({"region": rng.choice(["north", "south"], n)})
    return Dataset(frame, labels, CLASSES, "tabular", sensitive=sensitive, name="planted"), proba


def slices_of(data: Dataset, proba: np.ndarray, **options):
    analyzer = Slices(**options)
    result = analyzer.run(Predictions(proba, data.classes), data)
    return judged(analyzer, result, DEFAULT_VALUES)


def test_a_planted_table_slice_is_found_and_named_in_words():
    result = slices_of(*planted_table(planted=True))
    worst = result.summary.worst
    assert worst is not None
    assert worst.words == "color = red and shape = star" and worst.metric == "error rate"
    assert worst.lower > 0.2 and worst.rate > 0.4 and worst.rest_rate < 0.2
    first = result.findings[0]
    assert first.severity == "high" and first.sentence.startswith("color = red and shape = star: error rate")
    assert "of rows" in first.sentence and "slices of at least 100 rows tested" in first.sentence
    assert result.metrics["slices.worst_gap"] == abs(worst.gap)
    low, high = result.intervals["slices.worst_gap"]
    assert 0 < low <= result.metrics["slices.worst_gap"] <= high
    assert "color = red and shape = star" in set(result.tables["slices"]["slice"])
    json.dumps(result.to_dict())


def test_without_the_planted_slice_nothing_is_found_and_the_search_says_what_it_rules_out():
    result = slices_of(*planted_table(planted=False))
    assert result.summary.found == () and result.metrics["slices.slices_found"] == 0
    assert result.metrics["slices.worst_gap"] == 0 and "slices.worst_gap" not in result.intervals
    (finding,) = result.findings
    gap = result.metrics["slices.detectable_gap"]
    assert finding.severity == "info" and 0 < gap < 0.5
    assert f"no gap larger than {gap:.0%} in any slice of at least 100 rows" in finding.sentence
    assert f"{int(result.metrics['slices.slices_tested']):,} slices" in finding.sentence


def test_the_columns_are_the_inputs_and_sensitive_columns_binned_and_named():
    result = slices_of(*planted_table(planted=True))
    columns = result.details["columns"]
    assert list(columns) == ["region", "color", "shape", "weight", "age"]
    assert columns["age"] == ["<25", "25-34", "35-44", "45-54", "55-64", ">=65"]
    assert len(columns["weight"]) == 4  # quartiles
    assert result.summary.slices_tested > 4 * 4


LEVELS = {"boot": 40, "sandal": 120, "shirt": 200}  # each class's brightness, alphabetical as the folders read


class NearestBrightness(torch.nn.Module):
    """The class whose brightness is nearest the image's mean brightness."""

    def forward(self, x):
        levels = torch.tensor(list(LEVELS.values()), dtype=x.dtype) / 255
        return -200 * (x.mean(dim=(1, 2, 3))[:, None] - levels) ** 2


def write_sites(root, washed: str | None, per_cell: int = 40):
    """Class folders of 4x4 grey images whose brightness says their class, give or take a per-image shift that
    misleads the model about one time in six, taken at three sites; the `washed` site's images are brightened
    by 150 (the model then reads most of them as the brightest class)."""
    rng = np.random.default_rng(7)
    rows = []
    for site in ("north", "south", "east"):
        for cls, level in LEVELS.items():
            (root / cls).mkdir(parents=True, exist_ok=True)
            for i in range(per_cell):
                value = level + rng.normal(0, 30) + rng.integers(-8, 9, (4, 4)) + (150 if site == washed else 0)
                name = f"{cls}/{site}{i:02d}.png"
                Image.fromarray(np.clip(value, 0, 255).astype(np.uint8), "L").save(root / name)
                rows.append({"file_name": name, "site": site})
    pd.DataFrame(rows).to_csv(root / "metadata.csv", index=False)


def site_slices(root, washed: str | None):
    write_sites(root, washed)
    data = read_data(root, sensitive=["site"])
    model = audit.wrap(NearestBrightness(), modality="image", classes=data.classes, device="cpu")
    return audit.run(model, data, ["slices"], seed=0).result("slices")


def test_a_washed_out_site_is_a_slice_finding_that_names_the_site(tmp_path):
    result = site_slices(tmp_path / "washed", "east")
    worst = result.summary.worst
    assert worst.words == "site = east" and worst.metric == "error rate"
    assert worst.rate > 0.5 and worst.rest_rate < 0.3
    assert result.findings[0].severity == "high" and result.findings[0].sentence.startswith("site = east: error")


def test_a_control_image_folder_gets_no_slice(tmp_path):
    result = site_slices(tmp_path / "control", None)
    assert result.summary.found == ()
    assert [f.severity for f in result.findings] == ["info"]


def test_texts_that_mention_female_words_are_a_slice_when_the_model_errs_on_them():
    rng = np.random.default_rng(3)
    subjects = ["she", "he", "the director", "the film", "it"]
    texts = [f"{subjects[i % 5]} was {'good' if i % 3 else 'long and slow'} in the end" for i in range(3000)]
    labels = rng.integers(0, 2, len(texts))
    female = np.array([t.startswith("she ") for t in texts])
    for planted in (True, False):
        wrong = rng.random(len(texts)) > np.where(female & planted, 0.55, 0.9)
        predicted = np.where(wrong, 1 - labels, labels)
        data = Dataset(np.array(texts, dtype=object), labels, CLASSES, "text", name="texts")
        result = slices_of(data, np.column_stack([1 - predicted, predicted]).astype(float))
        assert "words" in result.details["columns"]
        found = [s.words for s in result.summary.found if s.metric == "error rate"]
        assert found[:1] == (["mentions female words = yes"] if planted else []), found


def test_a_policy_gates_the_worst_slice_on_the_lower_bound_of_its_gap():
    from audit.policy.gates import Policy

    data, proba = planted_table(planted=True)
    frame = data.inputs.assign(region=data.sensitive["region"], label=data.labels, predicted=proba.argmax(axis=1))
    options = dict(target="label", prediction="predicted", sensitive=["region", "color", "shape"],
                   analyzers=["slices"])
    for bound, status in ((0.1, "fail"), (0.5, "pass")):
        policy = Policy.from_dict({"gates": {"slices.worst_gap": {"max": bound, "use": "lower"}}})
        run = audit.from_predictions(frame, **options, policy=policy)
        (gate,) = policy.evaluate(run).gates
        assert gate.status == status and gate.value == run.metrics["slices.worst_gap_lower"]
