"""The distribution is `torch-model-audit`: pyproject.toml, `audit --version`, and every install hint use it;
nothing tells a user to `pip install audit` (an unrelated 2010 project owns that index name)."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest

from audit._util import distribution
from audit._util.distribution import DISTRIBUTION, install_hint

ROOT = Path(__file__).resolve().parents[1]
# `pip install audit`, `pip install "audit[ray]"`, `pip install -q audit[x]`: the index name, not a path or a checkout
OLD_NAME = re.compile(r"""pip install(?: -\S+)* ["']?audit(?:\[|["'\s`]|$)""", re.M)


def test_pyproject_names_the_distribution_and_keeps_the_command():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["name"] == DISTRIBUTION == "torch-model-audit"
    assert project["scripts"] == {"audit": "audit.__main__:main"}


def test_version_prints_the_distribution_name_without_loading_torch():
    code = ("import sys; from audit.cli import main\n"
            "try:\n    main(['--version'])\nexcept SystemExit as e:\n    code = e.code\n"
            "print('torch' in sys.modules, code)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                          env={"PYTHONPATH": str(ROOT), "PATH": ""}, timeout=120)
    assert proc.returncode == 0, proc.stderr
    first, last = proc.stdout.strip().splitlines()
    assert first == f"torch-model-audit {distribution.version()}"
    assert last == "False 0"


def test_version_falls_back_to_the_source_tree_when_not_installed(monkeypatch):
    import audit

    def missing(name):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(metadata, "version", missing)
    assert distribution.version() == audit.__version__
    monkeypatch.setattr(metadata, "version", lambda name: "9.9" if name == DISTRIBUTION else "0")
    assert distribution.version() == "9.9"


def test_install_hints_use_the_distribution_name(monkeypatch):
    from audit.engine import named
    from audit._util.errors import AuditInputError

    assert install_hint("ray") == 'pip install "torch-model-audit[ray]"'
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(AuditInputError, match=re.escape(install_hint("ray"))):
        list(named("ray").map(lambda shared, batch: batch, None, [1, 2]))
    from audit.io.huggingface import INSTALL
    assert INSTALL.endswith(install_hint("transformers"))


def test_the_old_name_pattern_catches_what_it_must():
    for bad in ["pip install audit", 'pip install "audit[ray]"', "pip install -q audit[transformers]",
                "`pip install audit`"]:
        assert OLD_NAME.search(bad), bad
    for good in ['pip install "torch-model-audit[ray]"', "pip install -c constraints.txt -e .",
                 "pip install auditwheel"]:
        assert not OLD_NAME.search(good), good


def test_nothing_in_the_repository_says_pip_install_audit():
    files = [ROOT / "README.md", ROOT / "pyproject.toml", *ROOT.glob("audit/**/*.py"), *ROOT.glob("examples/**/*"),
             *ROOT.glob("audit/report/templates/*"), *ROOT.glob("benchmarks/**/*.py")]
    offenders = [f"{path.relative_to(ROOT)}: {m.group(0)}" for path in files if path.is_file()
                 for m in OLD_NAME.finditer(path.read_text(errors="replace"))]
    assert offenders == []


def test_a_report_records_the_version_under_the_distribution_name():
    from audit.executor.runner import library_versions

    versions = library_versions()
    assert versions[DISTRIBUTION] == distribution.version() and "audit" not in versions
