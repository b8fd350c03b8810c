"""The randomness check looks at a few rows only (CHECK_ROWS): a model random at inference still shows it there,
and a deterministic one is still found deterministic, however many rows the attacks take."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import audit
from audit.methods.robustness.stochastic import is_stochastic


def _model(module: nn.Module) -> audit.Model:
    return audit.wrap(module, modality="tabular", classes=["a", "b"])


def _rows(n: int = 200) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(0).normal(size=(n, 6)).astype(np.float32))


class _Net(nn.Module):
    """Linear, ReLU, linear; with `dropout`, dropout also at inference (Monte Carlo dropout)."""

    def __init__(self, dropout: float = 0.0):
        super().__init__()
        self.first, self.second, self.dropout = nn.Linear(6, 16), nn.Linear(16, 2), dropout

    def forward(self, x):
        return self.second(F.dropout(torch.relu(self.first(x)), self.dropout, training=self.dropout > 0))


def test_dropout_at_inference_is_found_on_the_rows_checked():
    torch.manual_seed(0)
    assert is_stochastic(_model(_Net(dropout=0.2)), _rows())


def test_deterministic_model_is_not_found_random():
    torch.manual_seed(0)
    assert not is_stochastic(_model(_Net()), _rows())


class _RowsSeen(nn.Module):
    """Deterministic; counts the rows it is asked about."""

    def __init__(self):
        super().__init__()
        self.linear, self.rows = nn.Linear(6, 2), 0

    def forward(self, x):
        self.rows += len(x)
        return self.linear(x)


def test_the_check_passes_over_a_few_rows_not_the_whole_sample():
    module = _RowsSeen()
    model = _model(module)
    module.rows = 0  # what wrapping it ran
    assert not is_stochastic(model, _rows(200))
    assert 0 < module.rows < 2 * 200  # 3 passes over CHECK_ROWS rows (and what sizing a pass probes), not 3 x 200
