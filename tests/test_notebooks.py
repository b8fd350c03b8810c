"""The example notebooks run top to bottom, so they never rot."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
NOTEBOOKS = sorted(EXAMPLES.glob("*.ipynb"))


def test_the_examples_hold_the_notebooks_the_readme_promises():
    assert {p.stem for p in NOTEBOOKS} == {"adult_fairness", "custom_model", "digits_explanations", "mitigation",
                                          "reviews_robustness"}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs(path, tmp_path):
    notebook = nbformat.read(path, as_version=4)
    # Limits that only catch a hang: sized for a machine loaded to four times its cores, where a
    # cell that takes 30 s when idle can take minutes.
    NotebookClient(notebook, timeout=900, startup_timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    html = [o for o in outputs if o.output_type in ("execute_result", "display_data") and "text/html" in o.data]
    assert html, "an AuditRun or Result should render as HTML in the notebook"
