"""The mitigation sweep: its front is non-dominated, its strict end is fairer, its choice passes the gate and is what
it writes."""

from __future__ import annotations

import json

import numpy as np
import pytest
from fairlearn.metrics import demographic_parity_difference, equalized_odds_difference
from hypothesis import given, settings
from hypothesis import strategies as st
from planted import labelled_csvs, sex_carrying_table
from sklearn.metrics import balanced_accuracy_score

import audit
from audit.io import checkpoint
from audit.cli import main
from audit.io.locate import audit_data
from audit._util.errors import AuditInputError
from audit.methods.fairness.intervals import mean_rate_interval
from audit.mitigation.adversarial_training import PGDTraining
from audit.mitigation.sweep import Sweep, SweepPoint, choose, measure, parse_grid, pareto_front, sweep
from audit.models.adversarial_training import AdversarialTraining
from audit.models.training import TrainConfig, train
from audit.report.html import render_result

SEX = "sex"


@pytest.fixture(scope="module")
def swept(adult_mlp, adult_fit_and_test):
    validation, test = adult_fit_and_test
    return sweep(adult_mlp, test, method="thresholds", column=SEX, limit=0.1, validation=validation)


def dominated_by_brute_force(points: list[tuple[float, float]]) -> list[bool]:
    return [any(b[0] >= a[0] and b[1] <= a[1] and b != a for b in points) for a in points]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 6), st.integers(0, 6)), min_size=1, max_size=12))
def test_front_is_the_non_dominated_points(raw):
    points = [(a / 6, d / 6) for a, d in raw]  # a coarse grid: ties and duplicates are common
    front = pareto_front([a for a, _ in points], [d for _, d in points])
    assert front.tolist() == [not x for x in dominated_by_brute_force(points)]
    assert front.any()  # the most accurate of the fairest points is never beaten
    kept = [p for p, on in zip(points, front) if on]
    assert not any(dominated_by_brute_force(kept))


def test_front_and_choice_leave_out_missing_numbers():
    assert pareto_front([0.9, np.nan, 0.8], [0.1, 0.0, 0.2]).tolist() == [True, False, False]
    # the most accurate point within the limit; ties go to the lower upper bound
    assert choose([0.7, 0.9, 0.9, 0.95], [0.05, 0.09, 0.08, 0.2], limit=0.1) == 2
    assert choose([0.7, 0.9], [0.15, 0.12], limit=0.1) == 1  # none within: the lowest upper bound
    with pytest.raises(AuditInputError, match="fewer than two groups"):
        choose([0.7, 0.9], [np.nan, np.nan], limit=0.1)


def test_balanced_accuracy_interval_matches_sklearn_and_covers():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 500)
    pred = np.where(rng.random(500) < 0.7, labels, rng.integers(0, 3, 500))
    x = [np.sum((labels == c) & (pred == c)) for c in range(3)]
    value, low, high = mean_rate_interval(x, np.bincount(labels), 0.95)
    assert value == pytest.approx(balanced_accuracy_score(labels, pred))
    assert low < value < high
    for recall, rows in (((0.95, 0.99), (20, 20)), ((0.9, 0.6), (50, 500)), ((0.8, 0.3, 0.6), (100, 20, 60))):
        truth = np.mean(recall)
        hits = [lo <= truth <= hi for _, lo, hi in (mean_rate_interval(rng.binomial(rows, recall), rows, 0.95)
                                                     for _ in range(2000))]
        assert np.mean(hits) >= 0.94  # 95% nominal; 2000 draws put a true 95% above 0.94 (z = 2)


def test_strict_end_is_fairer_and_the_choice_passes(swept, adult_fit_and_test, adult_mlp, tmp_path):
    _, test = adult_fit_and_test
    table = swept.table()
    assert list(table["tol"]) == [1.0, 0.2, 0.1, 0.05, 0.02, 0.0]
    loose, strict = swept.points[0], swept.points[-1]
    # adult's labels differ by sex, and so does the model: the unconstrained end keeps a gap the data support,
    # the strict end's interval lies below it
    assert loose.measured_interval[0] > 0.1
    assert strict.measured_interval[1] < loose.measured_interval[0]
    chosen = swept.points[swept.chosen]
    assert swept.passes and chosen.measured_interval[1] <= 0.1
    assert all(p.accuracy <= chosen.accuracy for p in swept.points if p.measured_interval[1] <= 0.1)
    assert table["pareto_front"].tolist() == pareto_front(table["balanced_accuracy"],
                                                          table["demographic_parity_difference"]).tolist()
    # the numbers are fairlearn's and sklearn's on the point's own decisions
    pred, labels = chosen.model.predict(test), adult_mlp.labels(test)
    assert chosen.measured == pytest.approx(demographic_parity_difference(labels, pred,
                                                                           sensitive_features=test.sensitive[SEX]))
    assert chosen.accuracy == pytest.approx(balanced_accuracy_score(labels, pred))
    # what is written is the chosen point
    loaded = audit.load_model(checkpoint.save(swept.model, tmp_path / "chosen.pt"))
    assert loaded.task.postprocessing.tol == chosen.value
    assert np.array_equal(loaded.predict(test), pred)


def test_section_escapes_names_and_marks_the_choice():
    points = tuple(SweepPoint(v, None, 0.8 - v / 10, (0.7, 0.9), 0.2 - v / 10, (0.1, 0.3 - v / 10))
                   for v in (0.0, 1.0))
    result = Sweep("lagrangian", "<b>sex&", "demographic_parity_difference", 0.25, 0.95, points).result()
    html = render_result(result)
    assert "&lt;b&gt;sex&amp;" in html and "<b>sex" not in html
    assert "Chosen: strength 1" in html and "Accuracy against disparity" in html
    assert result.tables["sweep"]["chosen"].tolist() == [False, True]


def test_bad_grids_are_refused():
    assert parse_grid("0, 0.5,2", "strength") == (0.0, 0.5, 2.0)
    assert parse_grid("0,1,0.1", "tol") == (1.0, 0.1, 0.0)  # from no constraint to strict
    for text, message in (("0.1,abc", "'abc' is not a number"), ("0.5", "found 1 distinct"),
                          ("0,2", "found 2.0"), ("0.1,nan", "found nan")):
        with pytest.raises(AuditInputError, match=message):
            parse_grid(text, "tol")


def test_mitigate_sweep_command(adult_mlp, adult_fit_and_test, tmp_path, capsys):
    validation, test = adult_fit_and_test
    original = checkpoint.save(adult_mlp, tmp_path / "model.pt")
    files = labelled_csvs(tmp_path, {"validation": validation, "test": test}, "income")
    policy = tmp_path / "policy.toml"
    policy.write_text('[gates."fairness.sex.demographic_parity_difference"]\nmax = 0.1\nuse = "upper"\n')
    args = ["mitigate", str(original), "--method", "thresholds", "--sensitive", SEX, "--constraint",
            "demographic_parity", "--sweep", "-o", str(tmp_path / "fixed.pt"), "--validation",
            str(files["validation"]), "--data", str(files["test"]), "--target", "income", "--analyzers",
            "performance,fairness", "--report", str(tmp_path / "c.html"), "--json", str(tmp_path / "c.json"),
            "--quiet"]
    assert main([*args, "--policy", str(policy)]) == 0  # the chosen point passes the gate on its upper bound
    assert "swept thresholds over 6 values of tol" in capsys.readouterr().out
    doc = json.loads((tmp_path / "c.json").read_text())
    section = doc["sections"]["mitigation_sweep"]
    rows = section["tables"]["sweep"]
    chosen = next(r for r in rows if r["chosen"])
    fairness = doc["candidate"]["results"]["fairness"]
    metric = "fairness.sex.demographic_parity_difference"
    # the comparison's fairness analyzer sees the written model as the sweep saw its chosen point
    assert fairness["metrics"][metric] == pytest.approx(chosen["demographic_parity_difference"])
    assert fairness["intervals"][metric] == pytest.approx([chosen["low"], chosen["high"]])
    assert audit.load_model(tmp_path / "fixed.pt").task.postprocessing.tol == chosen["tol"]
    html = (tmp_path / "c.html").read_text()
    assert "Accuracy against disparity" in html and f"Chosen: tol {chosen['tol']:g}" in html
    assert html.count("data:image/png;base64,") >= 1

    for extra, message in ((["--grid", "0.1,abc"], "'abc' is not a number"),
                           (["--grid", "0.5,3"], "from 0 to 1; found 3.0"),
                           ([], "--sweep needs a limit"),
                           (["--max-disparity", "0.1", "--constraint", "equalized_odds"], "relaxes demographic_parity"),
                           (["--max-disparity", "2"], "limit must be from 0 to 1"),
                           (["--max-disparity", "0.1", "--method", "lagrangian", "--strength", "2"],
                            "not --strength"),
                           (["--max-disparity", "0.1", "--method", "reweighing"], "a strength to vary"),
                           (["--min-robust-accuracy", "0.5"], "--min-robust-accuracy goes with a pgd sweep"),
                           (["--method", "pgd"], "--constraint and --strength go with a fairness method")):
        (tmp_path / "fixed.pt").unlink(missing_ok=True)
        argv = [*args, *extra]
        if "--method" in extra:  # a training method: no --validation
            argv = [a for a in argv if a not in ("--validation", str(files["validation"]))]
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1
        assert not (tmp_path / "fixed.pt").exists()
    assert main(["mitigate", str(original), "--method", "pgd", "--sweep", "-o", str(tmp_path / "fixed.pt")]) == 2
    assert "--sweep needs a limit to choose by: --min-robust-accuracy A" in capsys.readouterr().err


def test_training_sweep_trades_accuracy_for_parity(tmp_path):
    sex_carrying_table(tmp_path / "d.csv", 3000)
    assert main(["train", "mlp", "--data", str(tmp_path / "d.csv"), "--target", "y", "--sensitive", "sex",
                 "--epochs", "5", "--quiet", "-o", str(tmp_path / "m.pt")]) == 0
    model = audit.load_model(tmp_path / "m.pt")
    data = audit_data(dict(model.task.dataset), sensitive=["sex"], classes=model.classes)  # the recorded test split
    result = sweep(model, data, method="lagrangian", column="sex", grid=[10, 0], limit=0.2)
    free, strict = result.points
    assert (free.value, strict.value) == (0, 10)
    # the penalty closes the planted gap beyond its intervals, at a cost in accuracy, without predicting one class
    assert strict.measured_interval[1] < free.measured_interval[0]
    assert 0.6 < strict.accuracy < free.accuracy
    assert result.chosen == 1 and result.passes
    pred, labels = strict.model.predict(data), model.labels(data)
    assert strict.measured == pytest.approx(demographic_parity_difference(labels, pred,
                                                                           sensitive_features=data.sensitive["sex"]))
    odds = measure(strict.model, data, 10, column="sex", metric="equalized_odds_difference", positive=1,
                   confidence=0.95)
    assert odds.measured == pytest.approx(equalized_odds_difference(labels, pred,
                                                                     sensitive_features=data.sensitive["sex"]))
    assert strict.model.task.training["mitigation"]["strength"] == 10


def test_adversarial_training_sweep_trades_clean_for_robust_accuracy(tmp_path, capsys):
    splits = [audit.load_dataset("digits", split) for split in ("train", "validation", "test")]
    config = TrainConfig(epochs=4, patience=4, lr=0.003, batch_size=64)
    epsilon = 0.1  # the robustness analyzer's default for these images: a tenth of their range
    recorded = AdversarialTraining(epsilon=epsilon, steps=3, share=1.0)
    model = train("cnn", *splits, config=config, model_config={"channels": [8, 16], "hidden": 32},
                  hook=PGDTraining(recorded), quiet=True).model
    path = checkpoint.save(model, tmp_path / "m.pt")
    test = splits[2]
    argv = ["mitigate", str(path), "--method", "pgd", "-o", str(tmp_path / "f.pt"), "--analyzers", "performance",
            "--report", str(tmp_path / "c.html"), "--json", str(tmp_path / "c.json"), "--quiet"]
    assert main([*argv, "--sweep", "--grid", f"{epsilon},0", "--min-robust-accuracy", "0.3"]) == 0
    assert "swept pgd over 2 values of epsilon" in capsys.readouterr().out
    rows = json.loads((tmp_path / "c.json").read_text())["sections"]["mitigation_sweep"]["tables"]["sweep"]
    plain, hardened = rows
    assert (plain["epsilon"], hardened["epsilon"]) == (0, epsilon)
    # planted by training: PGD examples in the loop raise accuracy under PGD at the evaluation epsilon
    assert hardened["pgd_accuracy"] > plain["pgd_accuracy"] + 0.08
    assert plain["low"] < 0.3 <= hardened["low"] and hardened["chosen"]  # the limit reads the lower bound
    written = audit.load_model(tmp_path / "f.pt")
    assert written.task.training["adversarial"] == model.task.training["adversarial"]
    assert np.array_equal(written.predict(test), model.predict(test))  # retrained as recorded: the same network
    assert "Accuracy against robustness" in (tmp_path / "c.html").read_text()

    sample = test.sample(256, seed=0)  # the robustness analyzer's sample size and draw
    assert hardened["clean_accuracy"] == pytest.approx(np.mean(written.predict(sample) == written.labels(sample)))

    (tmp_path / "f.pt").unlink()
    assert main(argv) == 0  # without --sweep: retrained once, with the recorded adversarial training
    assert "retrained with PGD adversarial training (epsilon 0.1)" in capsys.readouterr().out
    assert np.array_equal(audit.load_model(tmp_path / "f.pt").predict(test), model.predict(test))
