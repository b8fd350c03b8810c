"""`--quiet` silences the command it is given to, and nothing after it in the same process (a notebook, a test)."""

from __future__ import annotations

from audit._util import progress
from audit.cli import main


def test_quiet_ends_with_its_command(capsys, tmp_path):
    assert main(["report", str(tmp_path / "missing.pt"), "--quiet"]) == 2
    capsys.readouterr()
    progress.say("after the command")
    assert "after the command" in capsys.readouterr().err


def test_quiet_holds_inside_its_command(capsys):
    with progress.quiet(True):
        progress.say("inside")
    progress.say("outside")
    err = capsys.readouterr().err
    assert "inside" not in err and "outside" in err
