"""The layers of DESIGN.md, kept by the import-linter contracts in pyproject.toml: all of them hold on the package,
and an import planted against one of them breaks it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CONTRACTS = [contract["name"] for contract in
             tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]]
LAYERS, NO_FAIRNESS, ONLY_REPORT = CONTRACTS
LINT = "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())"


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    """`lint-imports` on the `audit` package and pyproject.toml under `root`."""
    return subprocess.run([sys.executable, "-c", LINT, "--config", str(root / "pyproject.toml"), "--no-cache",
                           "--no-logo"], cwd=root, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(root), "COLUMNS": "250"})


def status(output: str, contract: str) -> str:
    """KEPT or BROKEN, as lint-imports reports `contract`."""
    line = next(line for line in output.splitlines() if line.startswith(f"{contract} "))
    return line.removeprefix(f"{contract} ").strip()


def test_the_package_keeps_every_contract():
    assert len(CONTRACTS) == 3
    run = lint_imports(ROOT)
    assert {contract: status(run.stdout, contract) for contract in CONTRACTS} == dict.fromkeys(CONTRACTS, "KEPT"), \
        run.stdout
    assert run.returncode == 0


@pytest.fixture(scope="module")
def copy(tmp_path_factory) -> Path:
    """The package's modules and pyproject.toml, copied to plant imports in."""
    root = tmp_path_factory.mktemp("project")
    shutil.copy(ROOT / "pyproject.toml", root)
    shutil.copytree(ROOT / "audit", root / "audit", ignore=_not_modules)
    return root


def _not_modules(folder: str, names: list[str]) -> list[str]:
    return [n for n in names if n == "__pycache__" or not (n.endswith(".py") or (Path(folder) / n).is_dir())]


PLANTED = {
    "core imports report": ("audit/core/dataset.py", "import audit.report.html",
                            "audit.core.dataset -> audit.report.html", (LAYERS, ONLY_REPORT)),
    "_util imports the CLI": ("audit/_util/paths.py", "from audit.cli import main", "audit._util.paths -> audit.cli",
                              (LAYERS,)),
    "models import mitigation": ("audit/models/training.py", "import audit.mitigation.retrain",
                                 "audit.models.training -> audit.mitigation.retrain", (LAYERS,)),
    "models import methods, their neighbour": ("audit/models/training.py", "import audit.methods.robustness.attacks",
                                               "audit.models.training -> audit.methods.robustness.attacks", (LAYERS,)),
    "io imports models": ("audit/io/checkpoint.py", "from audit.models.registry import MODELS",
                          "audit.io.checkpoint -> audit.models.registry", (LAYERS,)),
    "a model loads fairlearn": ("audit/io/checkpoint.py", "import fairlearn", "audit.io.checkpoint -> fairlearn",
                                (NO_FAIRNESS,)),
}


@pytest.mark.parametrize("case", list(PLANTED), ids=list(PLANTED))
def test_a_planted_forbidden_import_breaks_its_contract(copy, case):
    module, statement, reported, broken = PLANTED[case]
    original = (copy / module).read_text()
    try:
        (copy / module).write_text(f"{original}\n{statement}  # planted\n")
        run = lint_imports(copy)
    finally:
        (copy / module).write_text(original)
    assert run.returncode == 1
    for contract in broken:
        assert status(run.stdout, contract) == "BROKEN"
    assert f"{reported} (l.{original.count(chr(10)) + 2})" in run.stdout, run.stdout


def test_a_copy_without_the_planted_import_is_not_reported(copy):
    run = lint_imports(copy)
    assert all(reported not in run.stdout for _, _, reported, _ in PLANTED.values()), run.stdout
    assert status(run.stdout, NO_FAIRNESS) == status(run.stdout, ONLY_REPORT) == "KEPT"
