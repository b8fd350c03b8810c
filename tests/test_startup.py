"""The package and the command start light: `import audit` loads names on first use, and Ctrl-C
while the command is still importing torch gives `interrupted`, exit 130, never a traceback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest

import audit
from audit._util.distribution import DISTRIBUTION, version

ROOT = Path(__file__).resolve().parents[1]

# Loaded by Python at start-up (sitecustomize on PYTHONPATH): the first `import torch` announces
# itself and then waits, so the test knows the command is inside its heavy imports.
STALL_ON_TORCH = textwrap.dedent("""
    import sys, time

    class StallOnTorch:
        def find_spec(self, name, path=None, target=None):
            if name == "torch":
                print("importing torch", flush=True)
                time.sleep(300)
            return None

    sys.meta_path.insert(0, StallOnTorch())
""")


def console_script_code() -> str:
    """What pip writes into the `audit` script for the entry point pyproject.toml declares."""
    entry = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]["audit"]
    module, function = entry.split(":")
    return f"import re, sys\nfrom {module} import {function}\nsys.exit({function}())"


@pytest.mark.parametrize("command", [["-m", "audit"], ["-c", console_script_code()]],
                         ids=["python-m-audit", "console-script"])
def test_ctrl_c_while_the_command_imports_torch_says_interrupted(tmp_path, command):
    (tmp_path / "sitecustomize.py").write_text(STALL_ON_TORCH)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])}
    proc = subprocess.Popen([sys.executable, *command, "models"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline() == "importing torch\n", proc.stderr.read()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=600)
    finally:
        proc.kill()
    assert "Traceback" not in err
    assert err == "interrupted\n"
    assert proc.returncode == 130


def test_import_audit_loads_no_heavy_library():
    code = "import sys, audit; print(sorted(m for m in ('torch', 'numpy', 'pandas', 'sklearn') if m in sys.modules))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.stdout == "[]\n", proc.stderr


def test_public_names_resolve_to_their_objects():
    from audit.io import checkpoint
    from audit.models.checkpoint import load
    from audit.methods.attributions import explain as explanations
    from audit.executor import runner
    assert sorted(audit._PUBLIC) == sorted(audit.__all__)
    assert audit.run is runner.run
    assert audit.load_model is load and audit.save_model is checkpoint.save
    # `audit.explain` is the function even after its module was imported (the module has another name).
    assert audit.explain is explanations.explain and callable(audit.explain)
    namespace: dict = {}
    exec("from audit import *", namespace)
    assert set(audit.__all__) <= set(namespace)
    assert set(audit.__all__) <= set(dir(audit))
    with pytest.raises(AttributeError, match="no attribute 'explian'"):
        audit.explian  # noqa: B018


HEAVY = ("torch", "numpy", "pandas", "sklearn", "fairlearn", "matplotlib", "scipy")
SHOW_HEAVY = f"""
import sys
from audit.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
print(sorted(m for m in {HEAVY!r} if m in sys.modules), file=sys.stderr)
"""


@pytest.mark.parametrize("args", [["--help"], ["report", "--help"], ["mitigate", "--help"], ["train", "--help"],
                                  ["--version"]], ids=" ".join)
def test_help_and_version_load_no_heavy_library(args):
    proc = subprocess.run([sys.executable, "-c", SHOW_HEAVY, *args], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.stderr == "[]\n"
    assert proc.stdout.startswith("usage: audit") or proc.stdout == f"{DISTRIBUTION} {version()}\n"


def test_a_command_loads_the_library_it_needs():  # the check above would pass if nothing could load torch
    proc = subprocess.run([sys.executable, "-c", SHOW_HEAVY, "models"], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert "'torch'" in proc.stderr and "mlp" in proc.stdout


def test_version_names_the_package(capsys):
    from audit.cli import main

    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0 and capsys.readouterr().out == f"torch-model-audit {version()}\n"


def test_help_shows_the_library_limits_and_exit_codes_match(capsys):
    from audit.cli import EXIT_USAGE, main
    from audit.models.checkpoint import load
    from audit.policy.gates import EXIT_USAGE as POLICY_EXIT_USAGE

    assert EXIT_USAGE == POLICY_EXIT_USAGE
    with pytest.raises(SystemExit):
        main(["report", "--help"])
    shown = " ".join(capsys.readouterr().out.split())
    assert f"(default {load.__kwdefaults__['max_parameters']:,})" in shown


def test_the_public_names_see_every_analyzer():
    code = ("import audit; policy = audit.Policy.from_toml('examples/ci/policy.toml'); "
            "print(sorted({g.metric.split('.')[0] for g in policy.gates}))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr
    assert "'performance'" in proc.stdout and "'fairness'" in proc.stdout
