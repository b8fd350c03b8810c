"""audit: explainability, robustness and fairness audits of PyTorch models.

The public names load on first use (PEP 562): `import audit` takes milliseconds instead of the
seconds torch, scikit-learn and shap take, so the `audit` command can answer Ctrl-C at any moment.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

# public name -> (module, name there)
_PUBLIC = {
    "ANALYZERS": ("audit.analyzers", "ANALYZERS"),
    "Analyzer": ("audit.analyzers", "Analyzer"),
    "AuditInputError": ("audit._util.errors", "AuditInputError"),
    "AuditRun": ("audit.executor.runner", "AuditRun"),
    "Dataset": ("audit.core.dataset", "Dataset"),
    "Finding": ("audit.analyzers", "Finding"),
    "Model": ("audit.core.model", "Model"),
    "Performance": ("audit.analyzers", "Performance"),
    "Policy": ("audit.policy.gates", "Policy"),
    "Result": ("audit.analyzers", "Result"),
    "Task": ("audit.core.model", "Task"),
    "Tokenizer": ("audit.core.encoders", "Tokenizer"),
    "Verdict": ("audit.policy.gates", "Verdict"),
    "explain": ("audit.methods.attributions.explain", "explain"),
    "from_predictions": ("audit.executor.predictions", "from_predictions"),
    "from_transformers": ("audit.io.huggingface", "from_transformers"),
    "open_source": ("audit.io.sources", "open_source"),
    "read_data": ("audit.io.sources", "read_data"),
    "list_datasets": ("audit.io.builtin", "list_datasets"),
    "list_models": ("audit.models", "list_models"),
    "load_dataset": ("audit.io.builtin", "load_dataset"),
    "load_model": ("audit.models.checkpoint", "load"),
    "mitigate": ("audit.mitigation.workflow", "mitigate"),
    "run": ("audit.executor.runner", "run"),
    "run_stream": ("audit.executor.stream", "run_stream"),
    "save_exported": ("audit.io.exported", "save"),
    "save_model": ("audit.io.checkpoint", "save"),
    "train": ("audit.models", "train"),
    "wrap": ("audit.core.model", "wrap"),
}

__all__ = [
    "ANALYZERS", "Analyzer", "AuditInputError", "AuditRun", "Dataset", "Finding", "Model", "Performance", "Policy",
    "Result", "Task", "Tokenizer", "Verdict", "explain", "from_predictions", "from_transformers", "list_datasets",
    "list_models", "load_dataset", "load_model", "mitigate", "open_source", "read_data", "run", "run_stream", "save_exported", "save_model", "train",
    "wrap",
]


def __getattr__(name: str):
    if name not in _PUBLIC:
        raise AttributeError(f"module 'audit' has no attribute {name!r}")
    module, attribute = _PUBLIC[name]
    importlib.import_module("audit.analyzers")  # fills the registry that run, compare and Policy read
    importlib.import_module("audit.report")  # results render themselves in a notebook through it
    value = getattr(importlib.import_module(module), attribute)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


if TYPE_CHECKING:  # what type checkers and editors see; the names above are the same objects
    from audit.analyzers import ANALYZERS, Analyzer, Finding, Performance, Result
    from audit.models.checkpoint import load as load_model
    from audit.io.checkpoint import save as save_model
    from audit.io.exported import save as save_exported
    from audit.core.dataset import Dataset
    from audit.core.encoders import Tokenizer
    from audit.io.builtin import list_datasets
    from audit.io.builtin import load_dataset
    from audit._util.errors import AuditInputError
    from audit.methods.attributions.explain import explain
    from audit.mitigation.workflow import mitigate
    from audit.io.sources import open_source, read_data
    from audit.io.huggingface import from_transformers
    from audit.core.model import Model, Task, wrap
    from audit.models import list_models, train
    from audit.policy.gates import Policy, Verdict
    from audit.executor.predictions import from_predictions
    from audit.executor.runner import AuditRun, run
