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
    "AuditInputError": ("audit.errors", "AuditInputError"),
    "AuditRun": ("audit.runner", "AuditRun"),
    "Dataset": ("audit.data", "Dataset"),
    "Finding": ("audit.analyzers", "Finding"),
    "Model": ("audit.model", "Model"),
    "Performance": ("audit.analyzers", "Performance"),
    "Policy": ("audit.policy", "Policy"),
    "Result": ("audit.analyzers", "Result"),
    "Task": ("audit.model", "Task"),
    "Tokenizer": ("audit.data", "Tokenizer"),
    "Verdict": ("audit.policy", "Verdict"),
    "explain": ("audit.explanations", "explain"),
    "from_predictions": ("audit.predictions", "from_predictions"),
    "from_transformers": ("audit.huggingface", "from_transformers"),
    "open_source": ("audit.stream.sources", "open_source"),
    "list_datasets": ("audit.data", "list_datasets"),
    "list_models": ("audit.models", "list_models"),
    "load_dataset": ("audit.data", "load_dataset"),
    "load_model": ("audit.checkpoint", "load"),
    "run": ("audit.runner", "run"),
    "run_stream": ("audit.stream.run", "run_stream"),
    "save_model": ("audit.checkpoint", "save"),
    "train": ("audit.models", "train"),
    "wrap": ("audit.model", "wrap"),
}

__all__ = [
    "ANALYZERS", "Analyzer", "AuditInputError", "AuditRun", "Dataset", "Finding", "Model", "Performance", "Policy", "Result",
    "Task", "Tokenizer", "Verdict", "explain", "from_predictions", "from_transformers", "list_datasets", "list_models",
    "load_dataset", "load_model", "open_source", "run", "run_stream", "save_model", "train", "wrap",
]


def __getattr__(name: str):
    if name not in _PUBLIC:
        raise AttributeError(f"module 'audit' has no attribute {name!r}")
    module, attribute = _PUBLIC[name]
    value = getattr(importlib.import_module(module), attribute)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


if TYPE_CHECKING:  # what type checkers and editors see; the names above are the same objects
    from audit.analyzers import ANALYZERS, Analyzer, Finding, Performance, Result
    from audit.checkpoint import load as load_model
    from audit.checkpoint import save as save_model
    from audit.data import Dataset, Tokenizer, list_datasets, load_dataset
    from audit.errors import AuditInputError
    from audit.explanations import explain
    from audit.huggingface import from_transformers
    from audit.model import Model, Task, wrap
    from audit.models import list_models, train
    from audit.policy import Policy, Verdict
    from audit.predictions import from_predictions
    from audit.runner import AuditRun, run
