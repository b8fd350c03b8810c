"""The fairness judgement is one typed object: its findings name two different groups, the class and what the
groups are (people or sites), never print nan, and a planted gap between sites is found while a control is not."""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

import audit
from audit.analyzers.fairness.analyzer import Fairness
from audit.analyzers.fairness.summary import COMPARED, EQUAL, UNDEFINED, FairnessSummary
from audit.core.analyzer import judged
from audit.core.groups import GROUPS, PEOPLE, SITES, attribute_kind
from audit.io.sources import read_data
from audit.methods.fairness.preview import MITIGATION_TABLE
from audit.policy.thresholds import DEFAULT_VALUES

NOT_A_NUMBER = re.compile(r"\b(nan|inf)\b", re.IGNORECASE)


def assert_plain(findings, groups) -> None:
    """No finding prints nan or inf, and no sentence names one group twice."""
    for finding in findings:
        for text in (finding.sentence, finding.why, finding.next):
            assert not NOT_A_NUMBER.search(text), text
        for group in groups:
            named = re.findall(rf"(?<![\w']){re.escape(group)}(?!\w)", finding.sentence)
            assert len(named) <= 1, finding.sentence


class Chosen(torch.nn.Module):
    """Predicts the class whose index is the first input: a model whose every prediction the test sets."""

    def __init__(self, classes: int):
        super().__init__()
        self.classes = classes

    def forward(self, x):
        return -5.0 * (torch.arange(self.classes, dtype=x.dtype) - x[:, :1]) ** 2


def judged_fairness(frame: pd.DataFrame, classes: int, **options):
    data = audit.Dataset.from_dataframe(frame, target="label", sensitive=["grp"], name="groups")
    model = audit.wrap(Chosen(classes), modality="tabular", classes=data.classes, feature_names=["p"])
    np.testing.assert_array_equal(model.predict(data), frame["p"].to_numpy())
    analyzer = Fairness(**{"intersections": 1, "mitigation": False, **options})
    return judged(analyzer, analyzer.run(model, data), DEFAULT_VALUES)


def test_a_collapsed_model_gets_one_high_finding_and_no_sentence_that_names_a_group_twice():
    rng = np.random.default_rng(0)
    sex = rng.choice(["female", "male"], 200, p=[0.35, 0.65])
    frame = pd.DataFrame({"p": 0.0, "grp": sex, "label": rng.choice([1, 2], 200, p=[0.7, 0.3])})
    result = judged_fairness(frame, 2)  # German credit's labels: 1 good, 2 bad; the model says 1 for every row
    assert [f.severity for f in result.findings].count("high") == 1
    (high,) = [f for f in result.findings if f.severity == "high"]
    assert "predicts '1' for 100.0% of the 200 rows" in high.sentence
    assert result.caveat == "the model predicts '1' for 100.0% of rows"
    assert_plain(result.findings, ["female", "male"])
    summary = result.summary
    assert summary.disparity("grp", "demographic_parity_ratio").pair.state == EQUAL  # 0 of 0 selected: no pair
    assert result.drivers["fairness.demographic_parity_difference"] == "grp: all groups equal (selection rate of '2')"
    assert summary.assumed_positive == "2"  # 1/2 labels leave the favourable class open: said as a finding
    assert any(f.severity == "medium" and "assumed to be '2'" in f.sentence for f in result.findings)


def test_the_pair_is_two_different_groups_and_the_drivers_name_it():
    rng = np.random.default_rng(1)
    grp = np.repeat(["a", "b"], 300)
    p = np.where(grp == "a", rng.random(600) < 0.6, rng.random(600) < 0.2).astype(float)
    result = judged_fairness(pd.DataFrame({"p": p, "grp": grp, "label": rng.choice(["no", "yes"], 600)}), 2)
    d = result.summary.worst["fairness.demographic_parity_difference"]
    assert (d.pair.state, d.pair.worse, d.pair.better, d.cls) == (COMPARED, "b", "a", "yes")
    assert d.value == result.metrics["fairness.demographic_parity_difference"]
    assert d.interval == result.intervals["fairness.demographic_parity_difference"]
    assert result.drivers["fairness.demographic_parity_difference"] == "grp: b vs a (selection rate of 'yes')"
    assert {g.group: g.trials for g in d.groups} == {"a": 300, "b": 300}
    assert any("for b is" in f.sentence and "a's" in f.sentence for f in result.findings)
    assert not any("mitigation preview" in f.next for f in result.findings)  # it did not run: no advice to read it
    previewed = judged_fairness(pd.DataFrame({"p": p, "grp": grp, "label": rng.choice(["no", "yes"], 600)}), 2,
                                mitigation=True)
    assert previewed.notes[MITIGATION_TABLE].startswith("PREVIEW") and MITIGATION_TABLE in previewed.tables
    assert any("mitigation preview" in f.next for f in previewed.findings)
    fair = pd.DataFrame({"p": np.tile([0.0, 1.0], 300), "grp": grp, "label": np.tile(["no", "yes"], 300)})
    assert judged_fairness(fair, 2).findings == ()  # no planted gap: no finding


@st.composite
def group_tables(draw):
    """Rows of up to three groups (g0, g1, g2) as (label, prediction) pairs: random, copies of another group's
    rows (equal rates), empty, or below the minimum group size; binary or three classes."""
    classes = draw(st.sampled_from([2, 3]))
    pairs = st.tuples(st.integers(0, classes - 1), st.integers(0, classes - 1))
    groups = {}
    for name in ("g0", "g1", "g2")[:draw(st.integers(1, 3))]:
        if groups and draw(st.booleans()):
            groups[name] = list(groups[draw(st.sampled_from(sorted(groups)))])
        else:
            groups[name] = draw(st.lists(pairs, max_size=50))
    rows = [(g, label, pred) for g, held in groups.items() for label, pred in held]
    if not rows:
        rows = [("g0", 0, 0)]
    frame = pd.DataFrame(rows, columns=["grp", "label", "p"]).astype({"p": float})
    frame["grp"] = pd.Categorical(frame["grp"], categories=["g0", "g1", "g2"])  # a group may hold no rows
    return frame, classes, draw(st.sampled_from([1, 5, 30])), draw(st.sampled_from([1, 10]))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(group_tables())
def test_no_sentence_names_one_group_twice_or_prints_nan(table):
    frame, classes, min_group_size, min_positives = table
    frame["label"] = frame["label"].map(lambda c: f"c{c}")
    if frame["label"].nunique() < classes:  # the model's classes are the labels': give each class one row
        extra = pd.DataFrame({"grp": "g0", "label": [f"c{c}" for c in range(classes)], "p": 0.0})
        frame = pd.concat([frame.astype({"grp": str}), extra], ignore_index=True)
        frame["grp"] = pd.Categorical(frame["grp"], categories=["g0", "g1", "g2"])
    result = judged_fairness(frame, classes, min_group_size=min_group_size, min_positives=min_positives)
    assert_plain(result.findings, ["g0", "g1", "g2"])
    summary = result.summary
    assert isinstance(summary, FairnessSummary)
    for d in [*summary.worst.values(), *summary.per_class]:
        assert d.pair.state in (COMPARED, EQUAL, UNDEFINED)
        if d.pair.state == COMPARED:
            assert d.pair.worse != d.pair.better and d.pair.worse_rate != d.pair.better_rate
        else:
            assert d.pair.worse is None and d.pair.better is None
        assert not NOT_A_NUMBER.search(d.driver) and not NOT_A_NUMBER.search(d.direction), d
    for name, driver in result.drivers.items():
        assert not NOT_A_NUMBER.search(driver), (name, driver)
    for name, value in result.metrics.items():
        if math.isnan(value):
            assert name not in summary.worst or summary.worst[name].pair.state != COMPARED or not \
                summary.worst[name].supported


def test_attribute_kinds_keep_people_and_sites_apart():
    for name in ("sex", "Gender", "race", "age", "applicantAge", "marital-status", "native-country", "religion",
                 "disability", "sex&race"):
        assert attribute_kind(name) == PEOPLE, name
    for name in ("site", "camera_id", "hospital", "Clinic", "device", "scanner", "location", "region", "source"):
        assert attribute_kind(name) == SITES, name
    for name in ("batch", "cohort", "wage", "sex&site"):
        assert attribute_kind(name) == GROUPS, name


LEVELS = {"boot": 40, "sandal": 120, "shirt": 200}  # each class's brightness, alphabetical as the folders read


def write_sites(root, washed: str | None, per_cell: int = 20):
    """Class folders of 4x4 grey images whose brightness says their class, taken at three sites (each class
    `per_cell` times at each); images of the `washed` site are washed out (brightened by 150)."""
    rng = np.random.default_rng(5)
    rows = []
    for site in ("north", "south", "east"):
        for cls, level in LEVELS.items():
            (root / cls).mkdir(parents=True, exist_ok=True)
            for i in range(per_cell):
                value = level + rng.integers(-8, 9, (4, 4)) + (150 if site == washed else 0)
                name = f"{cls}/{site}{i:02d}.png"
                Image.fromarray(np.clip(value, 0, 255).astype(np.uint8), "L").save(root / name)
                rows.append({"file_name": name, "site": site})
    pd.DataFrame(rows).to_csv(root / "metadata.csv", index=False)


class NearestBrightness(torch.nn.Module):
    """The class whose brightness is nearest the image's mean brightness."""

    def forward(self, x):
        levels = torch.tensor(list(LEVELS.values()), dtype=x.dtype) / 255
        return -200 * (x.mean(dim=(1, 2, 3))[:, None] - levels) ** 2


def site_result(root, washed: str | None):
    write_sites(root, washed)
    data = read_data(root, sensitive=["site"])
    assert data.classes == tuple(LEVELS)
    model = audit.wrap(NearestBrightness(), modality="image", classes=data.classes, device="cpu")
    run = audit.run(model, data, [Fairness(intersections=1)], seed=0)
    return run.result("fairness")


def test_a_washed_out_site_is_named_with_the_class_and_its_accuracy_gap(tmp_path):
    result = site_result(tmp_path / "washed", "east")
    assert result.summary.attributes["site"].kind == SITES
    found = result.findings
    assert found, "the washed-out site is no finding"
    classes = [f"'{c}'" for c in LEVELS]
    assert any("east" in f.sentence and any(c in f.sentence for c in classes) and "by site, between sites" in
               f.sentence for f in found if f.severity in ("high", "medium")), [f.sentence for f in found]
    (accuracy,) = [f for f in found if "fairness.site.accuracy_difference" in f.metrics]
    assert accuracy.sentence.startswith("Accuracy for east is ") and accuracy.severity == "medium"
    assert re.search(r"\(3\d% vs 100%", accuracy.sentence), accuracy.sentence
    for f in found:
        assert "people" not in f"{f.sentence} {f.why} {f.next}", f
        assert "mitigation preview" not in f.next  # three classes: the preview does not run
    assert_plain(found, ["north", "south", "east"])


def test_sites_without_a_planted_effect_get_no_fairness_finding(tmp_path):
    result = site_result(tmp_path / "control", None)
    assert result.findings == ()
    assert result.metrics["fairness.site.accuracy_difference"] == 0.0
