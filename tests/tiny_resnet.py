"""The issue's small ResNet (residual `+=`, BatchNorm, in-place ReLU), importable by a model spec's factory path
(`tiny_resnet:tiny_resnet`; tests/ is on sys.path under pytest, on PYTHONPATH for CLI subprocesses), and image
data it learns: a bright patch in the top-left corner is class "patch"."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

SHAPE = (3, 8, 8)
CLASSES = ["plain", "patch"]


class Block(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.conv1 = nn.Conv2d(width, width, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += identity
        return self.relu(out)


class TinyResNet(nn.Module):
    def __init__(self, num_classes: int = 2, width: int = 4):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, width, 3, padding=1, bias=False), nn.BatchNorm2d(width),
                                  nn.ReLU(inplace=True))
        self.block = Block(width)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(width, num_classes)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(self.block(self.stem(x))), 1))


def tiny_resnet(num_classes: int = 2, width: int = 4) -> TinyResNet:
    return TinyResNet(num_classes=num_classes, width=width)


def patch_data(n: int = 64, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Images in [0, 1], their labels (1: a bright 3x3 patch top left) and a sensitive 0/1 array."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.0, 0.5, size=(n, *SHAPE)).astype(np.float32)
    y = np.arange(n) % 2
    x[y == 1, :, :3, :3] = 1.0
    return x, y, rng.integers(0, 2, n)


def trained(seed: int = 0, **kwargs) -> TinyResNet:
    """A TinyResNet fitted to `patch_data` in a few full-batch steps."""
    torch.manual_seed(seed)
    net = tiny_resnet(**kwargs)
    x, y, _ = patch_data(seed=seed)
    xs, ys = torch.from_numpy(x), torch.from_numpy(y)
    opt = torch.optim.Adam(net.parameters(), lr=0.01)
    for _ in range(15):
        opt.zero_grad()
        nn.functional.cross_entropy(net(xs), ys).backward()
        opt.step()
    with torch.no_grad():  # running statistics of the final weights, so that eval mode predicts as training did
        for layer in net.modules():
            if isinstance(layer, nn.BatchNorm2d):
                layer.reset_running_stats()
                layer.momentum = None
        net(xs)
        for layer in net.modules():
            if isinstance(layer, nn.BatchNorm2d):
                layer.momentum = 0.1
    return net.eval()


def patch_npz(path):
    """40 held-out patch images, with their classes and a `site` array, as an NPZ at `path`."""
    x, y, site = patch_data(n=40, seed=1)
    np.savez(path, x=x, y=y, classes=np.array(CLASSES), site=site)
    return path


def report(capsys, model, *args) -> tuple[int, str]:
    """`audit report MODEL ARGS --quiet` through the CLI: its exit code and stderr."""
    from audit.cli import main

    code = main(["report", str(model), *map(str, args), "--quiet"])
    return code, capsys.readouterr().err.strip()

