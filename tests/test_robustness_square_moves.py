"""Square spends every query on a point it has not queried: a proposal whose new signs are those already in its
window (or that the bounds clip away) gets new ones first. On a model whose margin never falls, the search keeps
its start, so every queried candidate must differ from the start; without the redraw about half the one-pixel
windows at the end of the schedule would repeat it."""

from __future__ import annotations

import torch
from torch import nn

from audit.core.model import wrap
from audit.methods.robustness import square
from audit.methods.robustness.domain import Domain


class Constant(nn.Module):
    """The same logits for every input: no proposal ever lowers the margin."""

    def __init__(self):
        super().__init__()
        self.bias = nn.Parameter(torch.tensor([1.0, 0.0]))

    def forward(self, x):
        return self.bias.expand(len(x), 2) + 0 * x.flatten(1)[:, :1]


def queried_points(monkeypatch, x: torch.Tensor, domain: Domain, norm: str) -> list[torch.Tensor]:
    model = wrap(Constant(), modality="image", classes=("a", "b"), input_shape=tuple(x.shape[1:]))
    points = []
    margin = square._margin

    def recorded(model_, points_, y, draws):
        points.append(points_.clone())
        return margin(model_, points_, y, draws)

    monkeypatch.setattr(square, "_margin", recorded)
    square.square_attack(model, x, torch.zeros(len(x), dtype=torch.long), 0.1, domain, norm=norm, queries=60)
    return points


def test_every_query_moves_a_feature(monkeypatch):
    one = torch.ones(1, 4, 4)
    for low in (0.0, 0.5):  # clean images inside the range, and at its lower bound (the clip undoes -eps there)
        x = torch.full((8, 1, 4, 4), low)
        domain = Domain(one * 0.0, one * 1.0, one, one)
        start, *candidates = queried_points(monkeypatch, x, domain, "linf")
        assert len(candidates) == 60
        for candidate in candidates:
            assert bool((candidate != start).flatten(1).any(1).all())


def test_the_redraw_is_what_moves_them(monkeypatch):
    """The planted effect removed: with no redraw, a share of the one-pixel proposals repeat the start."""
    monkeypatch.setattr(square, "REDRAWS", 0)
    one = torch.ones(1, 4, 4)
    start, *candidates = queried_points(monkeypatch, torch.full((8, 1, 4, 4), 0.5), Domain(one * 0, one, one, one),
                                        "linf")
    repeats = sum(int((c == start).flatten(1).all(1).sum()) for c in candidates)
    assert repeats > 0.2 * 8 * 60
