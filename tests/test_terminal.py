"""What the command prints: control characters from names in the data shown as escapes, and no library warnings
about drawing them (on the command line or in Python)."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pandas as pd
import pytest

from audit.cli import main
from audit.cli.outputs import printable

ESCAPES = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")  # all but the line ends print adds
RED = "a\x1b[31mred\x01"
REVERSED = "b\u202eevil\nnext"


@pytest.mark.parametrize("raw, shown", [
    (RED, r"a\x1b[31mred\x01"),
    (REVERSED, r"b\u202eevil\nnext"),
    ("tab\there\x7f\x9b\u2066", r"tab\there\x7f\x9b\u2066"),
    ("Zoë's 中文 group, $x$ [1, 2]", "Zoë's 中文 group, $x$ [1, 2]"),
])
def test_control_characters_are_printed_as_escapes(raw, shown):
    assert printable(raw) == shown


@pytest.fixture
def hostile_predictions(tmp_path):
    """Predictions in which one group, named with a terminal escape, is always selected, and the other, named with
    a right-to-left override and a line break, hardly ever."""
    rng = np.random.default_rng(0)
    n = 400
    frame = pd.DataFrame({"y": rng.integers(0, 2, n), "group": np.where(np.arange(n) % 2, RED, REVERSED)})
    frame["p"] = np.where(frame["group"] == RED, 1, (rng.random(n) < 0.1).astype(int))
    frame.to_csv(tmp_path / "p.csv", index=False)
    return tmp_path / "p.csv"


def test_findings_about_hostile_groups_print_clean_lines_and_no_glyph_warnings(hostile_predictions, tmp_path,
                                                                               capsys):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code = main(["report", "--predictions", str(hostile_predictions), "--target", "y", "--prediction-column",
                     "p", "--sensitive", "group", "--analyzers", "fairness", "-o", str(tmp_path / "r.html"),
                     "--quiet"])
    out, err = capsys.readouterr()
    assert code == 0, err
    findings = [line for line in out.splitlines() if line.startswith("  high: ") or line.startswith("  medium: ")]
    assert findings and all(r"b\u202eevil\nnext" in line and r"a\x1b[31mred\x01" in line for line in findings)
    assert not ESCAPES.search(out + err) and len(out.splitlines()) == 1 + len(findings)
    assert [str(w.message) for w in caught if "missing from font" in str(w.message)] == []
    # The figures were drawn with those names: the warnings were there to hide.
    assert "<img" in (tmp_path / "r.html").read_text()


def test_drawing_hostile_names_warns_in_python_neither(hostile_predictions):
    """The figures are drawn by the library, so a notebook user gets no glyph warnings either."""
    import audit

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run = audit.from_predictions(hostile_predictions, target="y", prediction="p", sensitive=["group"],
                                     analyzers=["fairness"])
    assert run.result("fairness").figures  # drawn with those names
    assert [str(w.message) for w in caught if "missing from font" in str(w.message)] == []


def test_an_error_naming_a_hostile_column_is_one_clean_line(hostile_predictions, tmp_path, capsys):
    code = main(["report", "--predictions", str(hostile_predictions), "--target", "y\x1b[2J\r\x07",
                 "--prediction-column", "p", "-o", str(tmp_path / "r.html"), "--quiet"])
    out, err = capsys.readouterr()
    assert code == 2
    assert err.count("\n") == 1 and not ESCAPES.search(err) and "\r" not in err
    assert r"'y\x1b[2J\r\x07' not found" in err
