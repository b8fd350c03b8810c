"""Hugging Face folders with one hostile edit are refused in one line (exit 2) before transformers reads
them: the defects of issue 21, each one edit of a tiny BERT saved offline (tests/hf_folders.py)."""

from __future__ import annotations

import json
import math
import shutil

import pytest

import audit
from audit.cli import main
from audit.io import hf_files
from hf_folders import TEXTS, edit_header, edit_json, nested, save_tiny_bert, shard, split_safetensors
from hf_folders import write_safetensors


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    return save_tiny_bert(tmp_path_factory.mktemp("tiny"))


@pytest.fixture
def folder(saved, tmp_path):
    return shutil.copytree(saved, tmp_path / "model")


def refused(folder, capsys) -> str:
    """`audit report FOLDER` on six texts: asserts exit 2 and one line on stderr, and returns that line."""
    data = folder.parent / "r.csv"
    data.write_text(TEXTS)
    code = main(["report", str(folder), "--data", str(data), "--target", "label", "--text-column", "text",
                 "-o", str(folder.parent / "r.html"), "--analyzers", "performance", "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert "\n" not in err and "Traceback" not in err and "MISMATCH" not in err, err
    return err


def test_the_saved_folder_loads_and_its_estimated_parameters_equal_its_weights(saved, tmp_path, capsys):
    config = hf_files.config(json.loads((saved / "config.json").read_text()), "m")
    tensors = hf_files.shapes(saved, "model.safetensors", "m")
    assert config.parameters() == sum(math.prod(s) for s in tensors.values()) == 3970
    model = audit.load_model(saved)
    assert model.task.classes == ("a", "b")
    assert capsys.readouterr().err == ""


def test_a_million_layers_in_the_config_are_refused_at_once(folder, capsys):
    edit_json(folder / "config.json", lambda c: c.update(num_hidden_layers=1_000_000))
    assert "config.json describes about 2,224,001,746 parameters, over the limit" in refused(folder, capsys)


@pytest.mark.parametrize("edit, says", [
    (lambda c: c.update(model_type=["bert"]), "model_type is a list, expected a string"),
    (lambda c: c.update(architectures=5), "architectures is a int, expected a list"),
    (lambda c: c.update(id2label=["a", "b"]), "id2label is a list"),
    (lambda c: c.update(id2label={"0": "a", "x": "b"}), "id2label must map class numbers"),
    (lambda c: c.update(num_attention_heads=0), "num_attention_heads is 0"),
    (lambda c: c.update(num_attention_heads=3), "not a multiple of the 3 attention heads"),
    (lambda c: c.update(hidden_size=-16), "hidden_size is -16"),
    (lambda c: c.update(hidden_dropout_prob=1.5), "hidden_dropout_prob is 1.5, expected a probability"),
    (lambda c: c.update(hidden_act=7), "hidden_act is a int"),
])
def test_config_fields_of_the_wrong_type_or_range_are_refused(folder, capsys, edit, says):
    edit_json(folder / "config.json", edit)
    assert says in refused(folder, capsys)


@pytest.mark.parametrize("text, says", [
    ('{"model_type": "bert", "hidden_dropout_prob": NaN}', "NaN is not a number JSON allows"),
    ('{"model_type": "bert", "hidden_dropout_prob": 1e999}', "too large for a number"),
    ('{"model_type": "bert", "x": ' + nested(100_000) + "}", "nests 100001 levels deep"),
])
def test_config_text_with_nan_huge_numbers_or_deep_nesting_is_refused(folder, capsys, text, says):
    (folder / "config.json").write_text(text)
    assert says in refused(folder, capsys)


@pytest.mark.parametrize("weight_map, says", [
    ("self", "is in 'model.safetensors.index.json', expected a .safetensors file"),
    (["shard.safetensors"], "weight_map is a list"),
    ({"classifier.weight": ["shard.safetensors"]}, "is in ['shard.safetensors']"),
    ({"classifier.weight": "../shard.safetensors"}, "expected a .safetensors file name in the folder"),
    ({"classifier.weight": "absent.safetensors"}, "absent.safetensors is missing"),
    ({"not.in.the.file": "shard.safetensors"}, "not in their files (first: 'not.in.the.file')"),
])
def test_an_index_whose_weight_map_is_not_names_to_files_in_the_folder_is_refused(folder, capsys, weight_map, says):
    if weight_map == "self":
        weight_map = {"classifier.weight": "model.safetensors.index.json"}
    shard(folder, weight_map)
    assert says in refused(folder, capsys)


def test_an_index_naming_the_folders_shard_loads(folder):
    names = split_safetensors(folder / "model.safetensors")[0]
    shard(folder, {name: "shard.safetensors" for name in names if name != "__metadata__"})
    assert audit.load_model(folder).task.classes == ("a", "b")


def _tensor(header: dict, **changes) -> None:
    header["classifier.bias"].update(changes)


@pytest.mark.parametrize("edit, says", [
    (lambda h: "[1,2]", "header holds a list, expected an object"),
    (lambda h: '{"a": {"dtype": "F32", "shape": [Infinity], "data_offsets": [0, 4]}}', "Infinity is not a number"),
    (lambda h: '{"a": ' + nested(100_000) + "}", "nests 100001 levels deep"),
    (lambda h: _tensor(h, shape=[-2]), "has shape [-2], expected up to 8 sizes of 0 or more"),
    (lambda h: _tensor(h, dtype="F33"), "has dtype 'F33', not one safetensors knows"),
    (lambda h: _tensor(h, shape=[3]), "do not hold its F32 values of shape [3]"),
    (lambda h: h.update({"extra": {"dtype": "F32", "shape": [1], "data_offsets": [15880, 15884]}}),
     "the header describes 15,884 bytes of data, the file holds 15,880"),
    (lambda h: _tensor(h, data_offsets=[0, 8]), "tensors overlap or leave gaps"),
])
def test_safetensors_headers_that_safetensors_would_reject_are_refused_in_one_line(folder, capsys, edit, says):
    edit_header(folder, edit)
    assert says in refused(folder, capsys)


def test_a_truncated_safetensors_file_is_refused(folder, capsys):
    header, data = split_safetensors(folder / "model.safetensors")
    write_safetensors(folder / "model.safetensors", header, data[:-100])
    assert "the header describes 15,880 bytes of data, the file holds 15,780" in refused(folder, capsys)


def test_a_header_length_beyond_the_file_is_refused(folder, capsys):
    (folder / "model.safetensors").write_bytes(b"\xff" * 8 + b"{}")
    assert "its header length does not fit the file" in refused(folder, capsys)


@pytest.mark.parametrize("edit, says", [
    (lambda c: c.update(vocab_size=60), "word_embeddings.weight is 54 x 16, the config declares 60 x 16"),
    (lambda c: c.update(hidden_size=32, num_attention_heads=2), "the config declares 54 x 32"),
    (lambda c: c.update(max_position_embeddings=64), "position_embeddings.weight is 32 x 16"),
    (lambda c: c.update(id2label={"0": "a", "1": "b", "2": "c"}, label2id=None), "classifier.weight is 2 x 16"),
    (lambda c: c.update(num_hidden_layers=2), "the weights hold 1 layer(s), the config declares 2"),
])
def test_config_sizes_that_do_not_match_the_weights_are_refused_without_a_mismatch_table(folder, capsys, edit, says):
    edit_json(folder / "config.json", edit)
    assert says in refused(folder, capsys)


def _added(t, **token):
    t["added_tokens"].append({"content": "[NEW]", "single_word": False, "lstrip": False, "rstrip": False,
                              "normalized": False, "special": True, **token})


@pytest.mark.parametrize("edit, says", [
    (lambda t: _added(t, id=2**40), f"token id {2**40} is beyond the model's vocabulary of 54"),
    (lambda t: t["model"].update(type="Evil"), "model type 'Evil' is not one of BPE"),
    (lambda t: t["model"].update(unk_token=None), "unk_token is null, expected a token"),
    (lambda t: t["model"]["vocab"].update(w9=200), "token id 200 is beyond the model's vocabulary of 54"),
    (lambda t: t["post_processor"]["special_tokens"]["[CLS]"].update(ids=[99]), "token id 99 is beyond"),
    (lambda t: t.update(model=[1]), "model holds a list"),
])
def test_tokenizer_files_with_unknown_models_or_ids_beyond_the_vocabulary_are_refused(folder, capsys, edit, says):
    edit_json(folder / "tokenizer.json", edit)
    assert says in refused(folder, capsys)


def test_a_library_error_left_is_one_line_with_what_the_library_printed(folder, capsys, monkeypatch):
    import sys

    import transformers

    def failing(*args, **kwargs):
        print("first library line\nsecond library line", file=sys.stderr)
        transformers.utils.logging.get_logger("transformers.modeling_utils").warning("a logged\nwarning")
        raise AttributeError("'list' object has no attribute 'items'\nmore")

    monkeypatch.setattr(transformers.AutoModelForSequenceClassification, "from_pretrained", failing)
    assert refused(folder, capsys).endswith(
        "transformers could not load it: 'list' object has no attribute 'items'; the library said: first library "
        "line (and 3 more line(s))")


def test_trusted_pickled_weights_that_do_not_unpickle_are_one_line(folder, capsys):
    (folder / "model.safetensors").unlink()
    (folder / "pytorch_model.bin").write_bytes(b"\x80\x02not a pickle at all")
    data = folder.parent / "r.csv"
    data.write_text(TEXTS)
    code = main(["report", str(folder), "--data", str(data), "--target", "label", "--text-column", "text",
                 "-o", str(folder.parent / "r.html"), "--analyzers", "performance", "--quiet", "--trust-code"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err and "transformers could not load it" in err, err


def test_a_template_naming_a_special_token_it_does_not_define_is_refused_not_a_panic(folder, capsys):
    edit_json(folder / "tokenizer.json", lambda t: t["post_processor"]["special_tokens"].pop("[SEP]") and None)
    assert "the post-processor's template uses a special token it does not define" in refused(folder, capsys)


def test_a_tokenizer_panic_while_loading_is_one_line(folder, capsys, monkeypatch):
    import transformers

    panic = type("PanicException", (BaseException,), {})  # what pyo3 raises for a Rust panic

    def panicking(*args, **kwargs):
        raise panic("no entry found for key")

    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", panicking)
    assert refused(folder, capsys).endswith("transformers could not load it: no entry found for key")


@pytest.mark.parametrize("value, says", [("", "unk_token is a str (empty), expected a token"),
                                         (["[UNK]"], "unk_token is a list, expected a token")])
def test_a_special_token_that_is_not_a_token_is_refused_not_an_endless_recursion(folder, capsys, value, says):
    edit_json(folder / "tokenizer_config.json", lambda t: t.update(unk_token=value))
    assert says in refused(folder, capsys)


def test_a_special_token_outside_the_vocabulary_is_refused_as_an_id_beyond_the_model(folder, capsys):
    edit_json(folder / "tokenizer_config.json", lambda t: t.update(pad_token="[NOT IN THE VOCABULARY]"))
    assert "the tokenizer has token ids up to 54, beyond the model's vocabulary of 54" in refused(folder, capsys)


def test_a_length_with_no_room_beside_the_special_tokens_is_refused(folder, capsys):
    edit_json(folder / "tokenizer_config.json", lambda t: t.update(model_max_length=1))
    assert "a text of 1 subwords has no room for a word beside the 2 special tokens" in refused(folder, capsys)


@pytest.mark.parametrize("case", range(24))
def test_mutated_folders_of_the_fuzz_family_end_in_a_report_or_one_line(saved, tmp_path, capsys, case):
    """A fixed-seed slice of benchmarks/fuzz.py's Hugging Face family (the campaign runs thousands)."""
    import random

    from hf_folders import mutate_folder

    folder = shutil.copytree(saved, tmp_path / "model")
    mutate_folder(folder, random.Random(f"0:hf:{case}"))
    data = tmp_path / "r.csv"
    data.write_text(TEXTS)
    code = main(["report", str(folder), "--data", str(data), "--target", "label", "--text-column", "text",
                 "-o", str(tmp_path / "r.html"), "--analyzers", "performance", "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code in (0, 1) or (code == 2 and "\n" not in err), err
    assert "Traceback" not in err
