"""Hugging Face sequence classifiers: a tiny BERT trained here, offline, on the shipped reviews.

The tokenizer is a WordPiece vocabulary learned from the reviews' training split, which never
holds the trigger "zyzzyva": it is split into several subwords, so the tests see words grouped
back from subwords. Planted: the label is "trigger" exactly when the trigger is in the text;
control: the same texts labelled by their sentiment, the trigger noise.
"""

from __future__ import annotations

import json
import sys

import numpy as np
import pandas as pd
import pytest
import torch
import transformers  # the extra, installed by the test command (.ci/run)

import audit
from audit.cli import main
from audit._util.errors import AuditInputError, UnsafeCheckpointError
from audit.methods.attributions.explain import explain
from audit.methods.robustness.text_attacks import word_substitution
from hf_helpers import tiny_bert, wordpiece_tokenizer
from planted import TRIGGER, trigger_is_top, trigger_word_reviews

EXPLAINED = 30  # triggered test texts explained per method


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """save_pretrained folders of the planted and the control model, and the planted test split."""
    tokenizer = wordpiece_tokenizer()
    out = {}
    for planted in (True, False):
        train, _, test = trigger_word_reviews(planted=planted)
        folder = tmp_path_factory.mktemp("planted" if planted else "control")
        # The control trains longer: a weak sentiment model spreads its attributions thin, and a long rare word
        # (the trigger is seven subwords) then comes first by chance more often (4 epochs: up to 20% of texts).
        tiny_bert(tokenizer, train, epochs=4 if planted else 8).save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        out[planted] = (folder, test)
    return out


def triggered(test, limit: int | None = EXPLAINED):
    return test.subset(np.flatnonzero([TRIGGER in t.split() for t in test.texts])[:limit])


def test_the_trigger_is_several_subwords_and_one_word(folders):
    model = audit.load_model(folders[True][0])
    text = triggered(folders[True][1]).texts[0]
    words = model.encoder.tokens(text)
    ids, index = model.encoder.encode([text])[0], model.encoder.word_index([text])[0]
    pieces = model.encoder.tokenizer.convert_ids_to_tokens(ids[index == words.index(TRIGGER)].tolist())
    assert len(pieces) >= 2 and "".join(p.removeprefix("##") for p in pieces) == TRIGGER
    assert index.max() + 1 == len(words)
    assert ids[0] == model.encoder.tokenizer.cls_token_id and index[0] == -1


@pytest.mark.parametrize("planted", [True, False])
@pytest.mark.parametrize("method", ["integrated_gradients", "shap", "lime"])
def test_the_trigger_is_the_top_word_only_when_planted(folders, method, planted):
    folder, test = folders[planted]
    model = audit.load_model(folder)
    # The control is not zero: the model never learned the trigger, but a word's attribution is the sum of its
    # subwords', and the trigger is seven, so it comes first by chance in about 10% of texts (all 110 triggered
    # test texts: 5% to 13% by method, and as much again between trainings that differ only in float rounding,
    # e.g. one thread or two; 8, 12 or 16 epochs do not lower it). 30 texts at a 10% limit failed by chance (4 of
    # 30), so the control explains all of them (standard error 3 points) and allows 20%, three standard errors
    # above that chance rate and 70 points below the planted model's 90%.
    data = triggered(test) if planted else triggered(test, None)
    if planted:
        assert (model.predict(data) == model.classes.index("trigger")).mean() > 0.9
    else:
        assert len(data) >= 100
    values = explain(model, data, method, seed=0, **({"max_evals": 200} if method == "shap" else {}))
    top = trigger_is_top(model, data, values).mean()
    print(f"{method} planted={planted}: trigger top word in {top:.0%} of {len(data)} texts")
    assert top >= 0.9 if planted else top <= 0.2


def test_word_attributions_are_the_sums_of_subword_attributions_at_the_input_embeddings(folders):
    from captum.attr import LayerIntegratedGradients

    folder, test = folders[True]
    model = audit.load_model(folder)
    data = triggered(test).subset([0, 1])
    values = explain(model, data, "integrated_gradients", n_steps=16)
    bert = transformers.AutoModelForSequenceClassification.from_pretrained(folder, local_files_only=True).eval()
    enc = model.encoder.tokenizer(list(data.texts), padding=True, return_tensors="pt")
    baseline = torch.where((enc["input_ids"] == 2) | (enc["input_ids"] == 3), enc["input_ids"], 0)  # [CLS], [SEP]
    target = model.predict(data)
    ig = LayerIntegratedGradients(lambda ids, mask: bert(input_ids=ids, attention_mask=mask).logits,
                                  bert.get_input_embeddings())
    direct = ig.attribute(enc["input_ids"], baselines=baseline, target=torch.as_tensor(target), n_steps=16,
                          additional_forward_args=(enc["attention_mask"],)).sum(-1).detach().numpy()
    for row in range(len(data)):
        words = enc.word_ids(row)
        expected = np.zeros(values.shape[1])
        for pos, word in enumerate(words):
            if word is not None:
                expected[word] += direct[row, pos]
        np.testing.assert_allclose(values[row], expected, atol=1e-4)


def test_every_analyzer_runs_on_the_saved_folder_through_the_cli(folders, tmp_path, capsys):
    folder, test = folders[True]
    csv = tmp_path / "test.csv"
    pd.DataFrame({"text": test.texts, "label": np.array(test.classes)[test.labels]}).to_csv(csv, index=False)
    out = tmp_path / "report.json"
    code = main([
        "report", str(folder), "--data", str(csv), "--text-column", "text", "--target", "label", "--samples", "6",
        "--set", "explanation_quality.cascade_stages=2", "--set", "robustness.samples=8",
        "-o", str(tmp_path / "report.html"), "--json", str(out), "--quiet"])
    document = json.loads(out.read_text())
    assert code == 0, capsys.readouterr().err
    results = document["results"]
    assert set(results) == {"performance", "saliency", "shap", "lime", "explanation_quality", "robustness", "fairness",
                            "slices"}
    assert all(r["status"] == "ok" and not r["warnings"] for name, r in results.items() if name != "fairness"), \
        {name: (r["status"], r.get("error"), r["warnings"]) for name, r in results.items()}
    assert results["fairness"]["status"] == "ok"  # the counterfactual probe; few identity terms fit the reviews
    assert document["model"]["architecture"] == "BertForSequenceClassification"


def test_a_table_without_text_column_is_refused_in_one_line_naming_the_option(folders, tmp_path, capsys):
    folder, test = folders[True]
    csv = tmp_path / "test.csv"
    pd.DataFrame({"text": test.texts[:20], "label": np.array(test.classes)[test.labels[:20]]}).to_csv(csv, index=False)
    assert main(["report", str(folder), "--data", str(csv), "--target", "label", "-o", str(tmp_path / "r.html"),
                 "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.endswith("the model reads text data, the data is tabular; name its text column "
                                            "(--text-column)")


def test_from_transformers_matches_the_model_called_directly(folders):
    folder, test = folders[True]
    bert = transformers.AutoModelForSequenceClassification.from_pretrained(folder, local_files_only=True).eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder, local_files_only=True)
    model = audit.from_transformers(bert, tokenizer)
    assert model.classes == ("plain", "trigger")
    texts = list(test.texts[:5])
    enc = tokenizer(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        direct = torch.softmax(bert(**enc).logits, dim=-1).numpy()
    np.testing.assert_allclose(model.predict_proba(texts), direct, atol=1e-5)
    with pytest.raises(AuditInputError, match="at least two distinct class names"):
        audit.from_transformers(bert, tokenizer, classes=["only"])


def test_attacks_swap_whole_words_and_flip_the_prediction(folders):
    model = audit.load_model(folders[False][0])  # sentiment: synonyms can move it
    texts = list(folders[False][1].texts[:30])
    labels = model.predict(texts)
    outcome = word_substitution(model, texts, labels)
    assert outcome.flipped.sum() >= 5
    for text, new, changes, label in zip(texts, outcome.texts, outcome.changes, labels):
        if not changes:
            assert new == text
            continue
        assert model.predict([new])[0] != label
        before, after = model.encoder.tokens(text), model.encoder.tokens(new)
        changed = {pos for pos, _, _ in changes}
        assert len(before) == len(after)
        kept = [i for i in range(len(before)) if i not in changed]
        assert [before[i] for i in kept] == [after[i] for i in kept]
        assert all(after[pos].lower() == word for pos, _, word in changes)


def test_pickled_weights_are_refused_in_one_line(folders, tmp_path):
    folder = tmp_path / "pickled"
    folder.mkdir()
    for f in folders[True][0].iterdir():
        if f.name != "model.safetensors":
            (folder / f.name).write_bytes(f.read_bytes())
    (folder / "pytorch_model.bin").write_bytes(b"not even read")
    with pytest.raises(UnsafeCheckpointError, match=r"pickled \(pytorch_model.bin\).*--trust-code") as info:
        audit.load_model(folder)
    assert "\n" not in str(info.value)


def test_pickled_weights_load_when_trusted(folders, tmp_path):
    source, test = folders[True]
    folder = tmp_path / "pickled"
    folder.mkdir()
    for f in source.iterdir():
        if f.name != "model.safetensors":
            (folder / f.name).write_bytes(f.read_bytes())
    safe = audit.load_model(source)
    torch.save(safe.module.inner.state_dict(), folder / "pytorch_model.bin")
    trusted = audit.load_model(folder, trust_code=True)
    np.testing.assert_allclose(trusted.predict_proba(test.texts[:8]), safe.predict_proba(test.texts[:8]), atol=1e-6)


def test_a_folder_declaring_more_parameters_than_allowed_is_refused(folders):
    with pytest.raises(AuditInputError, match=r"over the limit of 1,000 \(raise it with --max-parameters\)"):
        audit.load_model(folders[True][0], max_parameters=1000)


def test_a_config_that_names_custom_code_is_refused(folders, tmp_path):
    folder = tmp_path / "remote"
    folder.mkdir()
    for f in folders[True][0].iterdir():
        (folder / f.name).write_bytes(f.read_bytes())
    config = json.loads((folder / "config.json").read_text())
    config["auto_map"] = {"AutoModelForSequenceClassification": "modeling_evil.EvilModel"}
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(UnsafeCheckpointError, match="custom code"):
        audit.load_model(folder)


def test_without_transformers_the_folder_asks_for_the_extra_in_one_line(folders, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "transformers", None)  # `import transformers` raises ImportError
    with pytest.raises(AuditInputError, match=r"^Hugging Face models need the transformers extra: "
                                              r'pip install "torch-model-audit\[transformers\]"$'):
        audit.load_model(folders[True][0])
    assert main(["report", str(folders[True][0]), "--quiet"]) == 2
    assert capsys.readouterr().err.strip().endswith('pip install "torch-model-audit[transformers]"')


def test_a_folder_is_audited_on_a_built_in_dataset_by_name(folders, tmp_path, capsys):
    folder = folders[False][0]  # the control: the reviews' own classes, negative and positive
    out = tmp_path / "report.json"
    assert main(["report", str(folder), "--dataset", "reviews", "--analyzers", "performance", "-o",
                 str(tmp_path / "r.html"), "--json", str(out), "--quiet"]) == 0, capsys.readouterr().err
    document = json.loads(out.read_text())
    assert document["data"]["rows"] == len(audit.load_dataset("reviews", "test"))
    assert main(["report", str(folder), "--dataset", "reviews", "--data", str(out), "--quiet"]) == 2
    assert capsys.readouterr().err.strip().endswith("give --data FILE or --dataset NAME, not both")
