"""What a model is for and not for: stated in its spec (training spec or model spec), carried by its checkpoint,
shown on the model card unless a flag says otherwise, "not stated" when nobody says; the text stays inert."""

from __future__ import annotations

import dataclasses
import json
import re

import numpy as np
import pandas as pd
import pytest
import torch
from huggingface_hub import ModelCard

import audit
import tiny_resnet
from audit.cli import main
from audit.core.model import MAX_USE_CHARS
from audit.mitigation.retrain import retrain
from audit.models.fair_training import Mitigation

INTENDED = "demonstrating audits of toy classifiers"
OUT_OF_SCOPE = "decisions about real people"
# Text that tries to end the front matter, add a heading, a link, an image and HTML, and break out of a string.
HOSTILE = 'x"\n---\ninjected: yes\n# Owned\n[link](http://evil.example)![i](http://evil.example/t.png)<b>\'\\'
SECTIONS = ["Model and data", "Intended use", "Out-of-scope use", "Evaluation", "Explanations", "Robustness",
            "Fairness", "Limitations", "How to reproduce"]


def toml_string(text: str) -> str:
    return json.dumps(text)  # a JSON string of these characters is a TOML basic string


def body(card_text: str) -> str:
    return card_text.split("\n---\n", 1)[1]


def section(card_text: str, title: str) -> str:
    return body(card_text).split(f"## {title}\n\n", 1)[1].split("\n\n## ", 1)[0]


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    folder = tmp_path_factory.mktemp("use")
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x0": rng.normal(size=200), "x1": rng.normal(size=200), "grp": rng.choice(["a", "b"], 200)})
    frame["label"] = np.where(frame["x0"] > 0, "no", "yes")
    frame.to_csv(folder / "data.csv", index=False)
    return folder


def train_spec(folder, name: str, use: dict[str, object]) -> list[str]:
    lines = [f"{key} = {toml_string(value) if isinstance(value, str) else value}" for key, value in use.items()]
    spec = folder / f"{name}.toml"
    spec.write_text("\n".join([*lines, 'architecture = "mlp"', 'data = "data.csv"', 'target = "label"',
                               'sensitive = ["grp"]', f'output = "{name}.pt"', "[training]", "epochs = 1"]) + "\n")
    return ["train", str(spec), "--quiet"]


def card(folder, model: str, *flags: str) -> str:
    out = folder / f"{model}-card.md"
    code = main(["report", str(folder / model), "--data", str(folder / "data.csv"), "--target", "label",
                 "--sensitive", "grp", "--analyzers", "performance", "--quiet", "-o", str(folder / "r.html"),
                 "--model-card", str(out), *flags])
    assert code == 0
    return out.read_text()


@pytest.fixture(scope="module")
def stated(table):
    assert main(train_spec(table, "stated", {"intended_use": INTENDED, "out_of_scope": OUT_OF_SCOPE})) == 0
    return table


def test_the_training_spec_travels_with_the_checkpoint_to_the_card(stated):
    model = audit.load_model(stated / "stated.pt")
    assert (model.task.intended_use, model.task.out_of_scope) == (INTENDED, OUT_OF_SCOPE)
    text = card(stated, "stated.pt")
    assert section(text, "Intended use") == INTENDED and section(text, "Out-of-scope use") == OUT_OF_SCOPE


def test_a_flag_overrides_the_spec(stated):
    text = card(stated, "stated.pt", "--intended-use", "teaching")
    assert section(text, "Intended use") == "teaching" and section(text, "Out-of-scope use") == OUT_OF_SCOPE
    data = audit.Dataset.from_dataframe(pd.read_csv(stated / "data.csv"), target="label", sensitive=["grp"])
    run = audit.run(audit.load_model(stated / "stated.pt"), data, ["performance"])
    assert run.model["intended_use"] == INTENDED
    assert section(run.to_model_card(out_of_scope="anything"), "Out-of-scope use") == "anything"


def test_a_mitigated_model_keeps_them(stated):
    model = audit.load_model(stated / "stated.pt")
    retrained = retrain(model, Mitigation.from_dict({"method": "reweighing", "sensitive": "grp"}), quiet=True).model
    assert retrained.task.use() == {"intended_use": INTENDED, "out_of_scope": OUT_OF_SCOPE}


def test_a_checkpoint_without_them_loads_and_says_not_stated(table):
    assert main(train_spec(table, "plain", {})) == 0
    payload = torch.load(table / "plain.pt", weights_only=True)
    assert "intended_use" not in payload["task"] and "out_of_scope" not in payload["task"]
    assert audit.load_model(table / "plain.pt").task.use() == {}
    text = card(table, "plain.pt")
    assert section(text, "Intended use") == "not stated" and section(text, "Out-of-scope use") == "not stated"


def test_the_model_specs_task_table_states_them(tmp_path):
    model = audit.wrap(tiny_resnet.tiny_resnet(), modality="image", classes=tiny_resnet.CLASSES,
                       input_shape=tiny_resnet.SHAPE)
    model.task = dataclasses.replace(model.task, intended_use=INTENDED, out_of_scope=HOSTILE)
    spec = audit.save_model(model, tmp_path / "resnet.toml", factory="tiny_resnet:tiny_resnet")
    loaded = audit.load_model(spec)
    assert (loaded.task.intended_use, loaded.task.out_of_scope) == (INTENDED, HOSTILE)
    plain = spec.read_text().replace(f"intended_use = {toml_string(INTENDED)}\n", "")
    plain = plain.replace(f"out_of_scope = {toml_string(HOSTILE)}\n", "")
    spec.write_text(plain)
    assert audit.load_model(spec).task.use() == {}


def test_hostile_text_in_the_spec_is_shown_inert(table):
    assert main(train_spec(table, "hostile", {"intended_use": HOSTILE, "out_of_scope": HOSTILE})) == 0
    text = card(table, "hostile.pt")
    loaded = ModelCard(text)
    assert set(loaded.data.to_dict()) == {"library_name", "tags", "model-index"}
    assert re.findall(r"^## (.*)$", body(text), re.MULTILINE) == SECTIONS
    assert not re.search(r"^(---|# Owned|injected)", body(text), re.MULTILINE)
    assert "](http" not in text and "<b>" not in text
    shown = re.sub(r"\\(.)", r"\1", section(text, "Intended use"))
    assert shown.replace("\n", " ") == HOSTILE.replace("\n", " ")


@pytest.mark.parametrize("use", [{"intended_use": 3}, {"out_of_scope": ["a"]},
                                 {"intended_use": "x" * (MAX_USE_CHARS + 1)}])
def test_a_bad_value_in_a_training_spec_is_one_line(table, capsys, use):
    assert main(train_spec(table, "bad", use)) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and next(iter(use)) in err and "Traceback" not in err
    assert not (table / "bad.pt").exists()


def test_a_bad_value_in_a_model_spec_or_a_checkpoint_is_one_line(stated, tmp_path, capsys):
    model = audit.wrap(tiny_resnet.tiny_resnet(), modality="image", classes=tiny_resnet.CLASSES,
                       input_shape=tiny_resnet.SHAPE)
    spec = audit.save_model(model, tmp_path / "resnet.toml", factory="tiny_resnet:tiny_resnet")
    spec.write_text(spec.read_text().replace("[task]\n", "[task]\nintended_use = 42\n"))
    payload = torch.load(stated / "stated.pt", weights_only=True)
    payload["task"]["out_of_scope"] = 42
    torch.save(payload, tmp_path / "tampered.pt")
    for path, key in ((spec, "task.intended_use"), (tmp_path / "tampered.pt", "task.out_of_scope")):
        assert main(["report", str(path), "--dataset", "digits", "--quiet", "-o", str(tmp_path / "r.html")]) == 2
        err = capsys.readouterr().err.strip()
        assert "\n" not in err and f"{key} must be a string" in err
