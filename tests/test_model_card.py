"""The Hugging Face model card of an audit: huggingface_hub reads back its metrics; names from data stay inert."""

from __future__ import annotations

import dataclasses
import json
import math
import re
import subprocess
import sys
from html import unescape

import numpy as np
import pandas as pd
import pytest
from huggingface_hub import ModelCard
from markdown_it import MarkdownIt

import audit
from audit.cli import main
from audit.io import checkpoint
from audit.models.training import TrainConfig, train
from audit.report.model_card import card_metrics

# A column name that tries to end the front matter and add a key, add a heading, a link and an image, break a table
# row, and carry characters YAML reads as line breaks (NEL, LINE SEPARATOR) or refuses (a C1 control).
SENSITIVE = "grp\n---\ninjected: yes\n# Heading `|![x](http://evil.example/t.png)\x85\u2028\x9b<b>"
GROUPS = ("a: b\n- c", "<img src=x onerror=alert(1)>")
# the analyzers' concerns in the order the analyzers run (Analyzer.concern)
SECTIONS = ["Model and data", "Intended use", "Out-of-scope use", "Evaluation", "Explanations", "Robustness",
            "Fairness", "Limitations", "How to reproduce"]
GFM = MarkdownIt("gfm-like")


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    folder = tmp_path_factory.mktemp("card")
    rng = np.random.default_rng(0)
    n = 240
    frame = pd.DataFrame({"x0": rng.normal(size=n), "x1": rng.normal(size=n), SENSITIVE: rng.choice(GROUPS, n)})
    frame["label"] = np.where(frame["x0"] > 0, "no", "yes")
    frame.to_parquet(folder / "data.parquet", index=False)
    data = audit.Dataset.from_dataframe(frame, target="label", sensitive=[SENSITIVE], name="hostile\n# data")
    model = train("mlp", *data.split([0.6, 0.2, 0.2], seed=0), config=TrainConfig(epochs=2), quiet=True).model
    checkpoint.save(model, folder / "m.pt")
    run = audit.run(model, data, ["performance", "fairness"], options={"fairness": {"mitigation": False}})
    return {"folder": folder, "run": run}


def eval_values(card: ModelCard) -> dict[str, float]:
    return {r.metric_name: r.metric_value for r in card.data.eval_results}


def headings(text: str) -> list[str]:
    body = text.split("\n---\n", 1)[1]
    return [unescape(re.sub(r"<[^>]+>", "", h)) for h in re.findall(r"<h\d>(.*?)</h\d>", GFM.render(body))]


def test_eval_results_are_the_runs_gateable_metrics(hostile):
    run = hostile["run"]
    card = ModelCard(run.to_model_card())
    values = eval_values(card)
    assert values == card_metrics(run) == {k: v for k, v in run.metrics.items() if k in values}
    assert "performance.accuracy" in values and f"fairness.{SENSITIVE}.demographic_parity_difference" in values
    result = card.data.eval_results[0]
    assert result.task_type == "tabular-classification" and result.dataset_name == "hostile\n# data"
    assert result.dataset_revision == run.data["sha256"]


def test_an_undefined_metric_stays_out_of_model_index_and_is_named_in_the_text(hostile):
    run = hostile["run"]
    performance = run.result("performance")
    broken = dataclasses.replace(performance, metrics={**performance.metrics, "performance.accuracy": math.nan})
    changed = dataclasses.replace(run, results=tuple(broken if r is performance else r for r in run.results))
    text = changed.to_model_card()
    assert "performance.accuracy" not in eval_values(ModelCard(text))
    assert "performance.accuracy" in eval_values(ModelCard(run.to_model_card()))
    assert re.search(r"not in `model-index`: .*`performance\.accuracy`", text)


def test_hostile_names_add_no_key_and_no_heading(hostile):
    run = hostile["run"]  # the model's stated use is untrusted text from its spec too
    text = dataclasses.replace(run, model={**run.model, "intended_use": SENSITIVE, "out_of_scope": GROUPS[0]}
                               ).to_model_card()
    card = ModelCard(text)
    assert set(card.data.to_dict()) == {"library_name", "tags", "model-index"}
    assert headings(text) == [f"Audit of {hostile['run'].model['architecture']}", *SECTIONS]
    html = GFM.render(text.split("\n---\n", 1)[1])
    assert "<img" not in html and "<a " not in html and "<b>" not in html
    shown = unescape(re.sub(r"<[^>]+>", "", html))
    assert "# Heading `|![x](http://evil.example/t.png)" in shown  # the name is shown literally
    plain = unescape(re.sub(r"<[^>]+>", "", GFM.render(run.to_model_card().split("\n---\n", 1)[1])))
    literal = "# Heading `|![x](http://evil.example/t.png)"
    assert shown.count(literal) == plain.count(literal) + 1  # the intended use, shown literally


def test_intervals_use_and_reproduction_are_in_the_text(hostile):
    run = hostile["run"]
    text = run.to_model_card(intended_use="screening *loan* applications")
    metric = "fairness.demographic_parity_difference"
    low, high = run.intervals[metric]
    assert f"| `{metric}` | {run.metrics[metric]:.3f} | {low:.3f} – {high:.3f} |" in text
    assert "## Intended use\n\nscreening \\*loan\\* applications" in text
    assert "## Out-of-scope use\n\nnot stated" in text
    assert f"Seed {run.seed};" in text and run.data["sha256"] in text and "## Robustness\n\nNot run" in text


def test_report_command_writes_the_card(hostile, tmp_path):
    folder, card_path = hostile["folder"], tmp_path / "README.md"
    code = main(["report", str(folder / "m.pt"), "--data", str(folder / "data.parquet"), "--target", "label",
                 "--sensitive", SENSITIVE, "--analyzers", "performance", "--quiet", "-o", str(tmp_path / "r.html"),
                 "--model-card", str(card_path), "--out-of-scope", "credit decisions"])
    assert code == 0
    card = ModelCard.load(card_path)
    assert set(eval_values(card)) == {"performance.accuracy", "performance.balanced_accuracy", "performance.ece",
                                      "performance.macro_f1"}
    assert "credit decisions" in card.text


def test_card_is_never_written_into_an_input_folder(tmp_path, capsys):
    model_folder = tmp_path / "hf-model"
    model_folder.mkdir()
    code = main(["report", str(model_folder), "--model-card", str(model_folder / "README.md")])
    assert code == 2
    assert "inside the folder model" in capsys.readouterr().err
    assert not (model_folder / "README.md").exists()


@pytest.mark.parametrize("command", ["compare", "mitigate"])
def test_compare_and_mitigate_write_the_candidates_card(hostile, tmp_path, command):
    folder, card_path = hostile["folder"], tmp_path / "README.md"
    model, data = str(folder / "m.pt"), str(folder / "data.parquet")
    common = ["--data", data, "--target", "label", "--analyzers", "performance", "--quiet", "--model-card",
              str(card_path), "--json", str(tmp_path / "c.json")]
    if command == "compare":
        args = ["compare", model, model, "--sensitive", SENSITIVE, "-o", str(tmp_path / "r.html"), *common]
    else:
        args = ["mitigate", model, "--method", "thresholds", "--sensitive", SENSITIVE, "--constraint",
                "demographic_parity", "--validation", data, "-o", str(tmp_path / "fixed.pt"), "--report",
                str(tmp_path / "r.html"), *common]
    assert main(args) == 0
    candidate = json.loads((tmp_path / "c.json").read_text())["candidate"]
    assert eval_values(ModelCard.load(card_path)) == candidate["metrics"]


def test_a_fresh_process_finds_the_gateable_metrics():
    """The catalog of gateable metrics is the registered analyzers': the card registers them itself."""
    script = ("from audit.core.result import Result\nfrom audit.executor.runner import AuditRun\n"
              "from audit.policy.gates import Verdict\nfrom audit.report.model_card import card_metrics\n"
              "run = AuditRun(model={'architecture': 'mlp'}, data={'name': 'd'}, verdict=Verdict('ungated'),\n"
              "    results=(Result('performance', metrics={'performance.accuracy': 0.5, 'performance.not_a_metric': 1.0}),))\n"
              "print(card_metrics(run))")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "{'performance.accuracy': 0.5}"
