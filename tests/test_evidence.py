"""The evidence map: every item marked covered, partly covered or not covered from the run's metrics; what is
cited exists in the run; the JSON round-trips; names from data stay inert in the Markdown."""

from __future__ import annotations

import dataclasses
import json
import re
from html import unescape

import pandas as pd
import pytest
from markdown_it import MarkdownIt
from test_ci_outputs import Tables

import audit
from audit.cli import main
from audit.io import checkpoint
from audit.models.training import TrainConfig, train
from audit.report.evidence import COVERED, NOT_COVERED, NOTICE, PARTLY
from audit.policy.evidence_items import ITEMS

EVERY = ["performance", "fairness", "robustness", "saliency", "shap", "lime", "explanation_quality"]
HOSTILE = "m`|![x](http://evil.example/t.png)<script>alert(1)</script>\n| row"
OUR_TAGS = {"h1", "h2", "p", "blockquote", "strong", "table", "thead", "tbody", "tr", "th", "td", "code", "br"}


@pytest.fixture(scope="module")
def compas():
    splits = [audit.load_dataset("compas", s) for s in ("train", "validation", "test")]
    model = train("mlp", *splits, config=TrainConfig(epochs=1, patience=1), quiet=True).model
    return model, splits[2].sample(200, seed=0)


@pytest.fixture(scope="module")
def every(compas):
    return audit.run(*compas, EVERY, samples=4)


@pytest.fixture(scope="module")
def performance_only(compas):
    return audit.run(*compas, ["performance"])


def entries(run) -> dict[str, object]:
    return {e.item.ref: e for e in run.to_evidence().entries}


@pytest.mark.parametrize("name", ["every", "performance_only"])
def test_each_item_is_marked_and_each_covered_one_cites_metrics_of_the_run(name, request):
    run = request.getfixturevalue(name)
    marked = entries(run)
    assert list(marked) == [item.ref for item in ITEMS]
    for entry in marked.values():
        assert entry.status in (COVERED, PARTLY, NOT_COVERED)
        assert entry.status == COVERED or entry.reason, entry.item.ref  # partly or not: always says why
        if entry.status == COVERED:
            assert entry.cited, entry.item.ref
        for cited in entry.cited:
            assert cited.metric in run.metrics
            assert cited.value == pytest.approx(run.metrics[cited.metric])
            assert cited.interval == (tuple(run.intervals[cited.metric]) if cited.metric in run.intervals else None)


def test_every_analyzer_covers_fairness_and_robustness_and_says_what_is_not_tested(every):
    marked = entries(every)
    fairness = marked["MEASURE 2.11"]
    assert fairness.status == COVERED
    assert {c.metric for c in fairness.cited} == {"fairness.demographic_parity_difference",
                                                 "fairness.equalized_odds_difference"}
    assert all(c.interval is not None and c.section == "Fairness" for c in fairness.cited)
    assert marked["MEASURE 2.9"].status == COVERED
    assert marked["Article 15(3)"].status == COVERED
    cybersecurity = marked["Article 15(5)"]
    assert cybersecurity.status == PARTLY
    assert "robustness.robust_accuracy" in {c.metric for c in cybersecurity.cited}
    assert "poisoning" in cybersecurity.reason and "no pickled code runs" in cybersecurity.reason
    assert marked["MEASURE 2.10"].status == NOT_COVERED  # no privacy attack is run


def test_items_whose_analyzers_did_not_run_are_not_covered_and_say_so(performance_only):
    marked = entries(performance_only)
    assert marked["Article 15(3)"].status == COVERED
    for ref, analyzer in (("MEASURE 2.11", "fairness"), ("MEASURE 2.7", "robustness"),
                          ("MEASURE 2.9", "explanation_quality")):
        assert marked[ref].status == NOT_COVERED and not marked[ref].cited
        assert f"{analyzer} not run" in marked[ref].reason
    validation = marked["Annex IV 2(g)"]  # accuracy measured, robustness and fairness not
    assert validation.status == PARTLY
    assert [c.metric for c in validation.cited] == ["performance.accuracy"]
    assert "robustness not run" in validation.reason and "fairness not run" in validation.reason
    assert "performance" not in validation.reason  # it ran and gave its metric


def test_a_skipped_analyzer_gives_its_reason(compas):
    model, data = compas
    run = audit.run(model, dataclasses.replace(data, sensitive=pd.DataFrame()), ["performance", "fairness"])
    assert run.result("fairness").status == "skipped"
    assert "fairness skipped" in entries(run)["MEASURE 2.11"].reason


def test_json_round_trips_and_says_it_is_no_conformity_assessment(every):
    evidence = every.to_evidence()
    assert json.loads(evidence.to_json()) == evidence.to_dict()
    assert evidence.to_dict()["notice"] == NOTICE and "not a conformity assessment" in NOTICE
    assert evidence.to_markdown().splitlines()[2] == f"> {NOTICE}"


def test_hostile_names_are_inert_in_the_markdown(performance_only):
    run = dataclasses.replace(performance_only, model={**performance_only.model, "path": HOSTILE},
                              data={**performance_only.data, "name": HOSTILE})
    text = run.to_evidence().to_markdown()
    html = MarkdownIt("gfm-like").render(text)
    parsed = Tables()
    parsed.feed(html)
    assert parsed.tags <= OUR_TAGS, parsed.tags - OUR_TAGS
    assert "href" not in html
    for table in re.findall(r"<table>.*?</table>", html, flags=re.S):
        counts = Tables()
        counts.feed(table)
        assert len(set(counts.rows)) == 1, counts.rows
    assert HOSTILE.replace("\n", " ") in unescape(re.sub(r"<[^>]+>", "", html))


def saved(model, data, folder):
    """`model` as folder/m.pt and `data` as folder/d.csv; the data."""
    checkpoint.save(model, folder / "m.pt")
    data.inputs.assign(**{data.target: [data.classes[i] for i in data.labels]}).to_csv(folder / "d.csv", index=False)
    return data


def test_the_cli_writes_the_evidence_map_as_json_or_markdown(compas, tmp_path):
    data = saved(*compas, tmp_path)
    for name in ("evidence.json", "evidence.md"):
        code = main(["report", str(tmp_path / "m.pt"), "--data", str(tmp_path / "d.csv"), "--target", data.target,
                     "--analyzers", "performance", "--quiet", "-o", str(tmp_path / "r.html"),
                     "--evidence", str(tmp_path / name)])
        assert code in (0, 1)
    written = json.loads((tmp_path / "evidence.json").read_text(encoding="utf-8"))
    assert [i["ref"] for i in written["items"]] == [item.ref for item in ITEMS]
    assert {i["status"] for i in written["items"]} <= {COVERED, PARTLY, NOT_COVERED}
    assert (tmp_path / "evidence.md").read_text(encoding="utf-8").startswith("# Evidence map")


@pytest.mark.parametrize("metrics, status",
                         [({"robustness.text_attack_success_rate": 0.4}, PARTLY), ({}, NOT_COVERED)])
def test_a_text_models_word_attack_counts_as_adversarial_testing(every, metrics, status):
    results = tuple(dataclasses.replace(r, metrics=metrics, intervals={}) if r.analyzer == "robustness" else r
                    for r in every.results)
    security = entries(dataclasses.replace(every, results=results))["MEASURE 2.7"]
    assert security.status == status
    assert [c.metric for c in security.cited] == list(metrics)
    assert metrics or "robustness ran without this metric" in security.reason


def test_compare_writes_the_candidates_evidence_map(compas, tmp_path):
    data = saved(*compas, tmp_path)
    code = main(["compare", str(tmp_path / "m.pt"), str(tmp_path / "m.pt"), "--data", str(tmp_path / "d.csv"),
                 "--target", data.target, "--analyzers", "performance", "--quiet", "-o", str(tmp_path / "c.html"),
                 "--evidence", str(tmp_path / "c.json")])
    assert code in (0, 1)
    written = json.loads((tmp_path / "c.json").read_text(encoding="utf-8"))
    assert {i["ref"]: i["status"] for i in written["items"]}["Article 15(3)"] == COVERED


def test_an_evidence_path_that_is_another_output_is_refused_before_loading(tmp_path, capsys):
    (tmp_path / "m.pt").write_bytes(b"not read")
    code = main(["report", str(tmp_path / "m.pt"), "--dataset", "compas", "--quiet", "-o", str(tmp_path / "r.html"),
                 "--json", str(tmp_path / "same"), "--evidence", str(tmp_path / "same")])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--evidence" in err, err
