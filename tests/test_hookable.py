"""DeepLIFT and DeepSHAP on residual networks written the usual way: in-place ReLUs and one ReLU
instance called twice per block, as in torchvision's ResNet."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import audit
from audit.methods.attributions.captum_methods import last_spatial_layer
from audit.methods.attributions.hookable import hookable_copy
from audit.methods.attributions.shap_method import explain_shap


class Block(nn.Module):
    def __init__(self, channels: int, *, reuse: bool):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels)
        self.conv2, self.bn2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=reuse)
        self.relu2 = self.relu if reuse else nn.ReLU()

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += x
        return self.relu2(out)


class TinyResNet(nn.Module):
    def __init__(self, *, reuse: bool):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(inplace=reuse))
        self.blocks = nn.Sequential(Block(8, reuse=reuse), Block(8, reuse=reuse))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(8, 3)

    def forward(self, x):
        return self.head(self.pool(self.blocks(self.stem(x))).flatten(1))


@pytest.fixture(scope="module")
def twins():
    """The same weights written the usual way (in-place, reused ReLU) and the explainer-friendly way."""
    torch.manual_seed(0)
    usual = TinyResNet(reuse=True)
    for m in usual.modules():  # non-trivial BatchNorm statistics
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
    plain = TinyResNet(reuse=False)
    plain.load_state_dict(usual.state_dict())
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, size=(24, 3, 16, 16)).astype(np.float32)
    data = audit.Dataset.from_arrays(x, np.arange(24) % 3, classes=["a", "b", "c"])
    wrap = lambda m: audit.wrap(m.eval(), modality="image", classes=data.classes)  # noqa: E731
    return wrap(usual), wrap(plain), data


def test_the_copy_predicts_like_the_original(twins):
    usual, _, data = twins
    x = usual.encode(data)
    copy = hookable_copy(usual.module, x[:2])
    with torch.no_grad():
        torch.testing.assert_close(copy(x), usual.module(x))
        torch.testing.assert_close(copy(x), usual.module(x))  # a second pass cycles the per-call copies
    assert not any(getattr(m, "inplace", False) for m in copy.modules())


def test_deeplift_on_the_usual_resnet_equals_the_explainer_friendly_one(twins):
    usual, plain, data = twins
    ours = audit.explain(usual, data, method="deeplift")
    reference = audit.explain(plain, data, method="deeplift")
    np.testing.assert_allclose(ours, reference, rtol=1e-4, atol=1e-6)
    assert np.abs(ours).sum() > 0


def test_deep_shap_runs_exact_on_the_usual_resnet(twins):
    usual, plain, data = twins
    background = usual.encode(data)[:8]
    ours = explain_shap(usual, data, background=background)
    reference = explain_shap(plain, data, background=background)
    assert ours.explainer == "DeepExplainer" and not ours.warnings
    np.testing.assert_allclose(ours.values, reference.values, rtol=1e-4, atol=1e-6)
    gap = np.abs(ours.base_values + ours.values.reshape(len(data), -1).sum(axis=1) - ours.outputs)
    assert gap.max() < 1e-3  # DeepExplainer's values add up to the logit


def test_grad_cam_reads_the_last_block_of_a_residual_network(twins):
    usual, _, data = twins
    x = usual.encode(data)
    assert last_spatial_layer(usual, x[:1]) is usual.module.inner.blocks  # not the last conv inside it
    conv = usual.module.inner.blocks[1].conv2
    kept = conv.weight.detach().clone()
    with torch.no_grad():  # the last block's conv path off: only the skip path carries the signal
        conv.weight.zero_()
    try:
        cam = audit.explain(usual, data, method="grad_cam")
    finally:
        with torch.no_grad():
            conv.weight.copy_(kept)
    assert np.abs(cam).sum() > 0  # Grad-CAM at that conv would be all zero


def test_grad_cam_layer_of_a_plain_cnn_is_the_rectified_last_convolution():
    cnn = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(4, 4, 3, padding=1),
                        nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(16, 2))
    model = audit.wrap(cnn, modality="image", classes=["a", "b"])
    assert last_spatial_layer(model, torch.zeros(1, 1, 8, 8)) is cnn[4]
