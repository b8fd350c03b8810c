"""Output paths: refused before any work when they would change a folder input or cannot be written; every writer
keeps the previous file until the new one is complete."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

import hostile
from audit._util.errors import AuditInputError
from audit._util.files import check_outputs, text_writer, write_together
from audit.cli import main
from audit.io import checkpoint


def one_line_error(capsys) -> str:
    out, err = capsys.readouterr()
    assert err.count("\n") == 1 and err.startswith("error: "), err
    return err


def leftovers(folder) -> list[str]:
    return sorted(p.name for p in folder.rglob("*.tmp"))


@pytest.fixture(scope="module")
def hf_folder(tmp_path_factory):
    """A one-layer BERT saved with save_pretrained (config.json, model.safetensors, tokenizer.json), and a CSV."""
    import transformers  # the extra, installed by the test command
    from hf_helpers import SPECIALS, word_texts, word_tokenizer

    root = tmp_path_factory.mktemp("hf")
    config = transformers.BertConfig(vocab_size=50 + len(SPECIALS), hidden_size=16, num_hidden_layers=1,
                                     num_attention_heads=2, intermediate_size=32, max_position_embeddings=32,
                                     id2label={0: "a", 1: "b"}, label2id={"a": 0, "b": 1})
    transformers.BertForSequenceClassification(config).save_pretrained(root / "bert")
    word_tokenizer(50, 32).save_pretrained(root / "bert")
    data = word_texts(20)
    pd.DataFrame({"text": data.texts, "label": [data.classes[i] for i in data.labels]}).to_csv(root / "r.csv",
                                                                                            index=False)
    return root / "bert", root / "r.csv"


@pytest.mark.parametrize("option, name", [("-o", "config.json"), ("--json", "model.safetensors"),
                                          ("--markdown", "tokenizer.json")])
def test_an_output_inside_the_model_folder_is_refused(hf_folder, tmp_path, capsys, option, name):
    folder, data = hf_folder
    before = (folder / name).read_bytes()
    outputs = {"-o": str(tmp_path / "r.html"), option: str(folder / name)}
    code = main(["report", str(folder), "--data", str(data), "--target", "label", "--text-column", "text",
                 "--analyzers", "performance", "--quiet", *(a for pair in outputs.items() for a in pair)])
    assert code == 2
    assert f"{option} {folder / name}: inside the folder model {folder}" in one_line_error(capsys)
    assert (folder / name).read_bytes() == before and leftovers(folder) == []


def test_outputs_beside_the_model_folder_are_written(hf_folder, tmp_path, capsys):
    folder, data = hf_folder
    code = main(["report", str(folder), "--data", str(data), "--target", "label", "--text-column", "text",
                 "--analyzers", "performance", "--quiet", "-o", str(tmp_path / "r.html"),
                 "--json", str(tmp_path / "r.json")])
    assert code in (0, 1), capsys.readouterr().err
    assert (tmp_path / "r.json").is_file()


@pytest.fixture
def image_folder(tmp_path):
    """Class folders 0, 1, 2 of 8x8 grey images and a metadata.csv; the model that reads them."""
    root = tmp_path / "imgs"
    rows = []
    for label in range(3):
        (root / str(label)).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(np.full((8, 8), 30 * label + i, dtype=np.uint8), "L").save(root / str(label) / f"{i}.png")
            rows.append({"file_name": f"{label}/{i}.png", "site": "ab"[i % 2]})
    pd.DataFrame(rows).to_csv(root / "metadata.csv", index=False)
    return root, checkpoint.save(hostile.image_model(), tmp_path / "cnn.pt")


@pytest.mark.parametrize("stream", [[], ["--stream"]])
@pytest.mark.parametrize("option, name", [("-o", "metadata.csv"), ("--junit", "0/0.png"), ("--json", "1/new.json")])
def test_an_output_inside_the_image_folder_is_refused(image_folder, tmp_path, capsys, option, name, stream):
    root, model = image_folder
    files = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    outputs = {"-o": str(tmp_path / "r.html"), option: str(root / name)}
    code = main(["report", str(model), "--data", str(root), "--analyzers", "performance", "--quiet", *stream,
                 *(a for pair in outputs.items() for a in pair)])
    assert code == 2
    assert f"{option} {root / name}: inside the folder --data {root}" in one_line_error(capsys)
    assert {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} == files


def test_outputs_beside_the_image_folder_are_written(image_folder, tmp_path, capsys):
    root, model = image_folder
    code = main(["report", str(model), "--data", str(root), "--analyzers", "performance", "--quiet",
                 "-o", str(tmp_path / "r.html"), "--junit", str(tmp_path / "r.xml")])
    assert code in (0, 1), capsys.readouterr().err
    assert (tmp_path / "r.xml").is_file()


@pytest.mark.parametrize("name_bytes", [250, 256])
def test_a_name_too_long_for_the_temporary_file_is_refused_before_any_work(tmp_path, capsys, monkeypatch,
                                                                           name_bytes):
    import audit.models.checkpoint

    def no_loading(*args, **kwargs):
        raise AssertionError("the model was loaded before the outputs were checked")

    monkeypatch.setattr(audit.models.checkpoint, "load", no_loading)
    model = checkpoint.save(hostile.tabular_model(), tmp_path / "m.pt")
    long = tmp_path / ("r" * (name_bytes - 5) + ".html")
    code = main(["report", str(model), "-o", str(tmp_path / "r.html"), "--json", str(long), "--quiet"])
    assert code == 2
    assert f"the file name is {name_bytes} bytes; at most 241 fit here" in one_line_error(capsys)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.pt"]


@pytest.mark.parametrize("name, fits", [("a" * 241, True), ("a" * 242, False), ("é" * 120 + "a", True),
                                        ("é" * 121, False)])
def test_the_longest_name_that_fits_is_written(tmp_path, name, fits):
    """241 bytes (UTF-8 bytes, not characters) is the most: the temporary name adds 14 to NAME_MAX's 255."""
    if not fits:
        with pytest.raises(AuditInputError, match="bytes; at most 241 fit here"):
            check_outputs({"-o": tmp_path / name}, {})
        return
    path = check_outputs({"-o": tmp_path / name}, {})["-o"]
    write_together({path: text_writer("x")})
    assert path.read_text() == "x" and leftovers(tmp_path) == []


def test_a_folder_input_does_not_refuse_outputs_beside_it(tmp_path):
    (tmp_path / "imgs").mkdir()
    (tmp_path / "imgs-report.html").touch()
    assert check_outputs({"-o": tmp_path / "imgs-report.html"}, {"--data": tmp_path / "imgs"})
    with pytest.raises(AuditInputError, match="inside the folder --data"):
        check_outputs({"-o": tmp_path / "imgs" / "deep" / "r.html"}, {"--data": tmp_path / "imgs"})


def interrupt(*args, **kwargs):
    raise KeyboardInterrupt


@pytest.mark.parametrize("where", ["naming the fixed model", "rendering the comparison"])
def test_an_interrupted_mitigate_keeps_the_previous_checkpoint(adult_mlp, adult_fit_and_test, tmp_path, capsys,
                                                               monkeypatch, where):
    from planted import labelled_csvs

    from audit.executor.compare import Comparison
    from audit.mitigation.workflow import Mitigated

    validation, test = adult_fit_and_test
    original = checkpoint.save(adult_mlp, tmp_path / "model.pt")
    files = labelled_csvs(tmp_path, {"validation": validation.sample(600, seed=0), "test": test.sample(400, seed=0)},
                          "income")
    fixed = tmp_path / "fixed.pt"
    fixed.write_bytes(b"the previous fixed model")
    monkeypatch.setattr(*{"naming the fixed model": (Mitigated, "saved_as", interrupt),
                          "rendering the comparison": (Comparison, "render_html", interrupt)}[where])
    code = main(["mitigate", str(original), "--method", "thresholds", "--sensitive", "sex", "--constraint",
                 "demographic_parity", "-o", str(fixed), "--validation", str(files["validation"]), "--data",
                 str(files["test"]), "--target", "income", "--analyzers", "performance,fairness", "--report",
                 str(tmp_path / "c.html"), "--json", str(tmp_path / "c.json"), "--quiet"])
    assert code == 130
    assert fixed.read_bytes() == b"the previous fixed model"
    assert leftovers(tmp_path) == [] and not (tmp_path / "c.json").exists()

    monkeypatch.undo()
    code = main(["mitigate", str(original), "--method", "thresholds", "--sensitive", "sex", "--constraint",
                 "demographic_parity", "-o", str(fixed), "--validation", str(files["validation"]), "--data",
                 str(files["test"]), "--target", "income", "--analyzers", "performance,fairness", "--report",
                 str(tmp_path / "c.html"), "--json", str(tmp_path / "c.json"), "--quiet"])
    assert code in (0, 1), capsys.readouterr().err
    assert f'"sha256": "{checkpoint.file_sha256(fixed)}"' in (tmp_path / "c.json").read_text()
    assert leftovers(tmp_path) == []


def test_an_interrupted_train_keeps_the_previous_checkpoint(tmp_path, capsys, monkeypatch):
    frame = hostile.table(60)
    frame.to_csv(tmp_path / "t.csv", index=False)
    model = tmp_path / "m.pt"
    model.write_bytes(b"the previous model")

    def half_written(obj, f, *args, **kwargs):
        f.write(b"half a checkpoint")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", half_written)
    code = main(["train", "mlp", "--data", str(tmp_path / "t.csv"), "--target", "approved", "-o", str(model),
                 "--epochs", "1", "--quiet"])
    assert code == 130
    assert model.read_bytes() == b"the previous model" and leftovers(tmp_path) == []


def test_names_too_long_elsewhere_in_a_path_are_one_line_not_a_crash(tmp_path):
    with pytest.raises(AuditInputError, match=r"^-o .*: cannot be written there \(File name too long\)$"):
        check_outputs({"-o": tmp_path / ("d" * 300) / "r.html"}, {})
    # An input whose name cannot exist is left to its reader to name; the output beside it is fine.
    assert check_outputs({"-o": tmp_path / "r.html"}, {"--data": tmp_path / ("x" * 300)})


def test_the_library_writers_refuse_a_name_too_long_in_one_line(tmp_path):
    with pytest.raises(AuditInputError, match="^output .*: the file name is 250 bytes; at most 241 fit here"):
        checkpoint.save(hostile.tabular_model(), tmp_path / ("m" * 247 + ".pt"))
    assert list(tmp_path.iterdir()) == []
