"""TOML and JSON inputs (policies, model specs, --set values, JSON documents) are bounded before they are parsed:
a file nesting too deep or too large is one line, exit 2, and the parser never recurses into it; text that merely
looks nested (brackets in strings and comments) is read as before."""

from __future__ import annotations

import json
import random
import tomllib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import bombs
import hostile
from audit._util.documents import MAX_DEPTH, MAX_TOML_BYTES, json_depth, json_loads, read_toml, toml_depth, toml_loads
from audit._util.errors import AuditInputError
from audit.cli import main
from audit.policy.gates import Policy

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("inputs")
    (root / "d.csv").write_bytes(hostile.table_bytes(hostile.table()))
    return hostile.save_payload(hostile.payload(hostile.tabular_model()), root / "m.pt"), root / "d.csv"


def refused(capsys, argv: list[str]) -> str:
    """The one line `audit` printed refusing `argv` (exit 2)."""
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "Traceback" not in err, (code, err)
    return err


@pytest.mark.parametrize("kind,depth", [("list", 1000), ("list", 100_000), ("table", 1000), ("key", 5000)])
def test_a_deeply_nested_policy_is_one_line_before_parsing(inputs, tmp_path, capsys, kind, depth):
    policy = tmp_path / "p.toml"
    policy.write_text(bombs.nested_toml(depth, kind))
    if (kind, depth) == ("list", 1000):
        assert policy.stat().st_size < 2100  # the 2 KB policy
    model, data = inputs
    err = refused(capsys, ["report", str(model), "--data", str(data), "--target", "approved", "--policy", str(policy),
                           "-o", str(tmp_path / "r.html"), "--quiet"])
    levels = depth - 1 if kind == "key" else depth  # a dotted key of n parts nests n - 1 tables
    assert "p.toml" in err and f"nested {levels:,} levels deep; the limit is {MAX_DEPTH}" in err
    assert not (tmp_path / "r.html").exists()


def test_a_policy_at_the_limit_is_parsed_and_one_more_level_is_not(tmp_path):
    policy = tmp_path / "p.toml"
    policy.write_text(bombs.nested_toml(MAX_DEPTH))
    assert read_toml(policy, what="policy file") == tomllib.loads(policy.read_text())
    policy.write_text(bombs.nested_toml(MAX_DEPTH + 1))
    with pytest.raises(AuditInputError, match=f"nested {MAX_DEPTH + 1} levels deep"):
        read_toml(policy, what="policy file")


def test_a_deeply_nested_model_spec_is_one_line(tmp_path, capsys):
    spec = tmp_path / "s.toml"
    spec.write_text(f'architecture = "mlp"\nmodel = {{ hidden = {"[" * 1000}1{"]" * 1000} }}\n')
    err = refused(capsys, ["train", str(spec), "--quiet"])
    assert "s.toml" in err and "nested 1,001 levels deep" in err  # the inline table, then 1,000 lists


def test_a_deeply_nested_set_value_is_one_line(inputs, tmp_path, capsys):
    model, data = inputs
    err = refused(capsys, ["report", str(model), "--data", str(data), "--target", "approved", "--set",
                           f"performance.bins={'[' * 1000}1{']' * 1000}", "-o", str(tmp_path / "r.html")])
    assert "--set value" in err and "nested deeper than 64 levels" in err


def test_a_large_policy_is_refused_before_it_is_read(tmp_path):
    policy = tmp_path / "p.toml"
    policy.write_text("# padding\n" * (MAX_TOML_BYTES // 10 + 1))
    with pytest.raises(AuditInputError, match=r"p\.toml: policy file of 1,048,5\d\d bytes is larger than"):
        read_toml(policy, what="policy file")


@pytest.mark.parametrize("text,problem", [("x = [1,", "not valid TOML"), ("x = 1\nx = 2", "not valid TOML")])
def test_parser_errors_are_one_line(tmp_path, text, problem):
    with pytest.raises(AuditInputError, match=problem) as caught:
        toml_loads(text, "p.toml")
    assert "\n" not in str(caught.value)


def test_text_that_only_looks_nested_is_read():
    deep = "[" * 200
    text = (f'a = "{deep}"\nb = \'{deep}\'\nc = """\n{deep}\n"""\nd = \'\'\'{deep}\'\'\'\n# {deep}\n'
            f'e = "escaped \\" {deep}"\n["dotted.in.quotes"]\nf = 1.5e3\ng = [1.25, 2.5, {{ h.i = "x.y.z" }}]\n')
    assert toml_depth(text) == 3  # g, its inline table, and h.i's dot
    assert toml_loads(text, "t.toml") == tomllib.loads(text)
    assert json_depth(json.dumps({"a": deep, "b": [deep, '"' + deep]})) == 2


@pytest.mark.parametrize("path", sorted(p.relative_to(ROOT) for p in (ROOT / "models").glob("*.toml")) +
                         [Path("examples/ci/policy.toml"), Path("pyproject.toml")], ids=str)
def test_every_shipped_toml_reads_as_tomllib_reads_it(path):
    assert read_toml(ROOT / path, what="TOML") == tomllib.loads((ROOT / path).read_text())


def test_a_deeply_nested_json_is_one_line():
    with pytest.raises(AuditInputError, match=r"config\.json: JSON nested 100,000 levels deep; the limit is 64"):
        json_loads(bombs.nested_json(100_000), "config.json", max_bytes=1 << 20)
    with pytest.raises(AuditInputError, match=r"config\.json: JSON is not valid JSON"):
        json_loads('{"a": [1,', "config.json", max_bytes=1 << 20)
    with pytest.raises(AuditInputError, match=r"JSON of 3 characters is larger than the limit of 2"):
        json_loads("[1]", "config.json", max_bytes=2)
    with pytest.raises(AuditInputError, match=r"x\.json: JSON is not valid JSON"):  # skipped in linear time
        json_loads('"\\"' * 100_000, "x.json", max_bytes=1 << 20)


JSON_VALUES = st.recursive(st.none() | st.booleans() | st.floats(allow_nan=False) | st.text(alphabet='[]{}"\\.a '),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
                               st.text(alphabet='[]{}"\\.a ', max_size=4), inner, max_size=3), max_leaves=20)


def depth(value) -> int:
    if isinstance(value, list):
        return 1 + max(map(depth, value), default=0)
    if isinstance(value, dict):
        return 1 + max(map(depth, value.values()), default=0)
    return 0


@settings(max_examples=200, deadline=None, derandomize=True, database=None)
@given(JSON_VALUES)
def test_json_depth_is_the_depth_of_the_document(value):
    assert json_depth(json.dumps(value)) == depth(value)


@settings(max_examples=60, deadline=None, derandomize=True, database=None)
@given(rng=st.randoms(use_true_random=False))
def test_hostile_policies_parse_or_are_one_line(tmp_path_factory, rng: random.Random):
    """A bounded slice of benchmarks/fuzz.py's policy family: mutated, nested deep, unbalanced or large."""
    path = tmp_path_factory.mktemp("p") / "p.toml"
    path.write_text(bombs.hostile_policy(rng), encoding="utf-8")
    try:
        Policy.from_toml(path)
    except AuditInputError as exc:
        assert "\n" not in str(exc)
