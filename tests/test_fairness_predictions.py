"""Auditing predictions that already exist: ProPublica's COMPAS decile score, with no model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import audit
from audit.cli import main

SHIPPED = Path(audit.__file__).parent / "io" / "files" / "compas-scores-two-years.filtered.csv.gz"
DECILES = Path(__file__).parent / "data" / "compas-decile-scores.csv.gz"  # id, decile_score from the same raw file


def compas_predictions() -> pd.DataFrame:
    """The shipped 6,172 filtered COMPAS rows with ProPublica's 'high risk' call: decile score 5 or more."""
    frame = pd.read_csv(SHIPPED, keep_default_na=False).merge(pd.read_csv(DECILES), on="id", validate="one_to_one")
    return frame.assign(high_risk=(frame["decile_score"] >= 5).astype(int))


def pandas_rates(frame: pd.DataFrame, race: str) -> tuple[float, float]:
    rows = frame[frame["race"] == race]
    fpr = rows.loc[rows["two_year_recid"] == 0, "high_risk"].mean()
    fnr = 1 - rows.loc[rows["two_year_recid"] == 1, "high_risk"].mean()
    return fpr, fnr


def test_compas_decile_score_rates_by_race_equal_pandas_and_propublica():
    frame = compas_predictions()
    assert len(frame) == 6172
    run = audit.from_predictions(frame, target="two_year_recid", prediction="high_risk", sensitive=["race"],
                                 options={"fairness": {"intersections": 1, "mitigation": False}})
    assert run.result("performance").status == "ok"
    skipped = {r.analyzer: r for r in run.results if r.status == "skipped"}
    assert "saliency" in skipped and "model itself" in skipped["saliency"].details["reason"]
    groups = run.result("fairness").tables["groups"].set_index("group")
    for race, published in (("African-American", (0.4234, 0.2848)), ("Caucasian", (0.2201, 0.4964))):
        fpr, fnr = pandas_rates(frame, race)
        assert groups.loc[race, "fpr"] == pytest.approx(fpr, abs=1e-12)
        assert groups.loc[race, "fnr"] == pytest.approx(fnr, abs=1e-12)
        assert (fpr, fnr) == pytest.approx(published, abs=5e-5)
    assert run.result("performance").metrics["performance.accuracy"] == pytest.approx(
        (frame["high_risk"] == frame["two_year_recid"]).mean(), abs=1e-12)


def test_report_from_a_predictions_file_on_the_command_line(capsys, tmp_path):
    path = tmp_path / "compas-scores.parquet"
    compas_predictions()[["two_year_recid", "high_risk", "race", "sex"]].to_parquet(path)
    out = tmp_path / "r.json"
    code = main(["report", "--predictions", str(path), "--target", "two_year_recid", "--prediction-column",
                 "high_risk", "--sensitive", "race", "sex", "--set", "fairness.mitigation=false",
                 "-o", str(tmp_path / "r.html"), "--json", str(out), "--quiet"])
    assert code == 0, capsys.readouterr().err
    doc = json.loads(out.read_text())
    assert doc["model"]["architecture"] == "predictions (no model)"
    assert doc["results"]["fairness"]["status"] == "ok"
    assert doc["results"]["robustness"]["status"] == "skipped"
    assert (tmp_path / "r.html").read_text().count("only its predictions were given") >= 1


def test_per_class_scores_and_bad_predictions_input(capsys, tmp_path):
    frame = compas_predictions().head(600)
    frame = frame.assign(p1=frame["decile_score"] / 10, p0=1 - frame["decile_score"] / 10)
    run = audit.from_predictions(frame, target="two_year_recid", scores=["p0", "p1"], sensitive=["sex"],
                                 analyzers=["performance", "fairness"],
                                 options={"fairness": {"intersections": 1, "mitigation": False}})
    expected = ((frame["decile_score"] > 5) == (frame["two_year_recid"] == 1)).mean()
    assert run.result("performance").metrics["performance.accuracy"] == pytest.approx(expected, abs=1e-12)
    path = tmp_path / "p.csv"
    frame.to_csv(path, index=False)
    capsys.readouterr()  # the library run's progress lines
    code = main(["report", "--predictions", str(path), "--target", "two_year_recid", "--prediction-column",
                 "nope", "-o", str(tmp_path / "x.html"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "prediction column 'nope' not found" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x.html").exists()


def test_predictions_are_judged_like_a_model_run():
    """Audited predictions get the default policy's findings, not a silent "no concerns"."""
    rng = np.random.default_rng(0)
    sex = rng.choice(["F", "M"], 2000)
    pred = np.where(sex == "M", rng.random(2000) < 0.6, rng.random(2000) < 0.1).astype(int)
    frame = pd.DataFrame({"y": rng.integers(0, 2, 2000), "p": pred, "sex": sex})
    run = audit.from_predictions(frame, target="y", prediction="p", sensitive=["sex"])
    sentences = [f.sentence for f in run.verdict.findings if f.severity == "high"]
    assert any("equalized odds by sex, between groups of people" in s for s in sentences), sentences
    assert run.verdict.summary.startswith("CONCERNS")
