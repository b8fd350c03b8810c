"""audit: explainability, robustness and fairness audits of PyTorch models."""

from audit.analyzers import ANALYZERS, Analyzer, Finding, Performance, Result
from audit.checkpoint import load as load_model
from audit.checkpoint import save as save_model
from audit.data import Dataset, Tokenizer, list_datasets, load_dataset
from audit.errors import AuditInputError
from audit.explain import explain
from audit.model import Model, Task, wrap
from audit.models import list_models, train
from audit.policy import Policy, Verdict
from audit.predictions import from_predictions
from audit.runner import AuditRun, run

__version__ = "0.1.0"

__all__ = [
    "ANALYZERS", "Analyzer", "AuditInputError", "AuditRun", "Dataset", "Finding", "Model", "Performance", "Policy", "Result",
    "Task", "Tokenizer", "Verdict", "explain", "from_predictions", "list_datasets", "list_models", "load_dataset", "load_model",
    "run", "save_model", "train", "wrap",
]
