"""CI outputs built from hostile names: the Markdown summary stays inert text, the JUnit file stays valid XML."""

from __future__ import annotations

import json
import re
from html import unescape
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from junit_schema import valid_junit
from markdown_it import MarkdownIt

import audit
from audit.io import checkpoint
from audit.cli import main
from audit.models.training import TrainConfig, train
from audit.report.escape import markdown_inert, xml_text

SENSITIVE = "grp`|![x](http://evil.example/t.png)<b>"
CONTROL = "site\x07\x1b[31m"  # a bell and a terminal escape in a column name
CLASSES = ("[link](http://x) <script>alert(1)</script>", "``a|b``\nnext row")
GROUPS = ("![i](http://evil.example/i.png)", "<img src=x onerror=alert(1)> | www.evil.example")
MODEL_NAME = "m\x01[x](javascript:alert(1))<script>`|.pt"  # a control character in the file name
# Our own markup in the summary; anything else would have come from data.
OUR_TAGS = {"h2", "p", "strong", "table", "thead", "tbody", "tr", "th", "td", "code", "details", "summary", "ul", "li"}  # ul/li: the findings list
GFM = MarkdownIt("gfm-like")  # CommonMark + tables + strikethrough + autolinked URLs (linkify)


@pytest.fixture(scope="module")
def hostile(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("hostile")
    rng = np.random.default_rng(0)
    n = 240
    frame = pd.DataFrame({"x0": rng.normal(size=n), "x1": rng.normal(size=n),
                          SENSITIVE: rng.choice(GROUPS, n), CONTROL: rng.choice(["a", "b"], n)})
    frame["label"] = np.where(frame["x0"] > 0, *CLASSES)
    frame.to_csv(folder / "data.csv", index=False)
    data = audit.Dataset.from_dataframe(frame, target="label", sensitive=[SENSITIVE, CONTROL], name="hostile")
    model = train("mlp", *data.split([0.6, 0.2, 0.2], seed=0), config=TrainConfig(epochs=2), quiet=True).model
    checkpoint.save(model, folder / MODEL_NAME)
    gates = {"performance.accuracy": {"min": 0.99},  # fails, so its message reaches the outputs
             f"fairness.{SENSITIVE}.demographic_parity_difference": {"max": 0.0},
             f"fairness.{CONTROL}.demographic_parity_difference": {"max": 1.0}}
    (folder / "policy.toml").write_text("".join(f"[gates.{json.dumps(m)}]\n" + "".join(
        f"{k} = {v}\n" for k, v in g.items()) for m, g in gates.items()))
    return {"folder": folder, "model": folder / MODEL_NAME, "data": folder / "data.csv",
            "policy": folder / "policy.toml"}


def audit_outputs(hostile, tmp_path, command: str) -> tuple[str, Path]:
    models = [hostile["model"]] * (2 if command == "compare" else 1)
    markdown, junit = tmp_path / "summary.md", tmp_path / "junit.xml"
    code = main([command, *map(str, models), "--data", str(hostile["data"]), "--target", "label",
                 "--sensitive", SENSITIVE, CONTROL, "--policy", str(hostile["policy"]),
                 "--analyzers", "performance,fairness",
                 "--set", "fairness.mitigation=false", "--quiet",
                 "-o", str(tmp_path / "r.html"), "--markdown", str(markdown), "--junit", str(junit)])
    assert code == 1  # the accuracy gate fails
    return markdown.read_text(encoding="utf-8"), junit


class Tables(HTMLParser):
    """Every tag name, and the cell count of every table row, in rendered HTML."""

    def __init__(self):
        super().__init__()
        self.tags, self.rows = set(), []

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        if tag == "tr":
            self.rows.append(0)
        elif tag in ("td", "th"):
            self.rows[-1] += 1


def source_cells(line: str) -> int:
    """Cells of a GFM table row as GitHub splits it: on pipes not escaped by a backslash."""
    return len(re.split(r"(?<!\\)\|", line.strip().strip("|")))


@pytest.mark.parametrize("command", ["report", "compare"])
def test_markdown_summary_of_hostile_names_is_inert(hostile, tmp_path, command):
    text, _ = audit_outputs(hostile, tmp_path, command)
    html = GFM.render(text)
    parsed = Tables()
    parsed.feed(html)
    assert parsed.tags <= OUR_TAGS, parsed.tags - OUR_TAGS  # no <img>, <a>, <script>, <b> from data
    assert "<img" not in html and "<a " not in html and "href" not in html
    for table in re.findall(r"<table>.*?</table>", html, flags=re.S):
        counts = Tables()
        counts.feed(table)
        assert len(set(counts.rows)) == 1, counts.rows
    for block in re.findall(r"(?m)^\|.*\|$(?:\n^\|.*\|$)*", text):  # each table of the source
        lines = block.splitlines()
        assert {source_cells(line) for line in lines} == {source_cells(lines[0])}, block
    shown = unescape(re.sub(r"<[^>]+>", "", html))
    assert SENSITIVE in shown  # the name is shown, literally, not interpreted
    assert "<= 0" in shown and "&lt;=" not in text  # code spans hold raw comparison operators


def test_junit_with_control_characters_in_names_is_valid(hostile, tmp_path):
    _, junit = audit_outputs(hostile, tmp_path, "report")
    root = valid_junit(junit)
    assert root.get("name") == hostile["model"].as_posix().replace("\x01", "\ufffd")
    names = {case.get("name") for case in root.iter("testcase")}
    assert "fairness.site\ufffd\ufffd[31m.demographic_parity_difference" in names


@pytest.mark.parametrize("text", [
    SENSITIVE, *CLASSES, *GROUPS, "a\\|b", "`", "``", " ` ", "x\\", "<!-- c -->", "&amp; &#60;", "1. item",
    "# head", "- item", "> quote", "***", "~~s~~", "https://evil.example", "www.evil.example", "a@evil.example",
    "[a]: http://evil.example", "<http://evil.example>", "\\", "*a* _b_",
])
@pytest.mark.parametrize("code", [False, True])
def test_markdown_inert_shows_the_text_and_nothing_else(text, code):
    rendered = GFM.render(f"| h |\n|---|\n| {markdown_inert(text, code=code)} |\n")
    parsed = Tables()
    parsed.feed(rendered)
    assert parsed.tags <= {"table", "thead", "tbody", "tr", "th", "td", "code"}
    assert parsed.rows == [1, 1]
    one_line = text.replace("\n", " ")
    cell = unescape(re.sub(r"</?code>", "", re.search(r"<td>(.*)</td>", rendered, flags=re.S).group(1)))
    assert cell == (one_line if code and "<code>" in rendered else one_line.strip())
    if not code or "|" not in text:  # outside a table a code span shows its escaped pipes as they are
        inline = GFM.renderInline(markdown_inert(text, code=code))
        assert unescape(re.sub(r"</?code>", "", inline)) == one_line


def test_xml_text_keeps_what_xml_holds_and_replaces_the_rest():
    assert xml_text("a\tb\nc\r\x00\x07\x1b\ud800\ufffe\U0001f600é") == (
        "a\tb\nc\r\ufffd\ufffd\ufffd\ufffd\ufffd\U0001f600é")
