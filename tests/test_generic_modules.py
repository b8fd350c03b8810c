"""Modules and data as users have them: logits in any wrapper, channels-last images, normalised
pixels, extra forward inputs, integer labels with class names, slices of a single class."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

import audit
from audit._util.errors import AuditInputError
from audit.io.sources import read_data


class PatchNet(nn.Module):
    """Class 1 when the top-left 2x2 patch of channel 0 is bright; reads NCHW or NHWC images."""

    def __init__(self, *, channels_last: bool = False, output: str = "tensor"):
        super().__init__()
        self.channels_last, self.output = channels_last, output
        self.conv = nn.Conv2d(3, 1, kernel_size=2, bias=False)
        with torch.no_grad():
            self.conv.weight.zero_()
            self.conv.weight[0, 0] = 1.0

    def forward(self, x, scale=None):
        if self.channels_last:
            x = x.permute(0, 3, 1, 2)
        score = self.conv(x)[:, 0, 0, 0] - 2.8
        if scale is not None:
            score = score * scale
        logits = torch.stack([-score, score], dim=1)
        return {"tensor": logits, "tuple": (logits, score), "dict": {"logits": logits, "hidden": score},
                "object": SimpleNamespace(logits=logits, loss=None)}[self.output]


def patch_images(n=40, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 0.4, size=(n, 3, 8, 8)).astype(np.float32)
    y = np.arange(n) % 2
    x[y == 1, 0, :2, :2] = 1.0
    return x, y


@pytest.mark.parametrize("output", ["tuple", "dict", "object"])
def test_any_logits_wrapper_gives_the_plain_module_probabilities(output):
    x, y = patch_images()
    data = audit.Dataset.from_arrays(x, y, classes=["plain", "patch"])
    plain = audit.wrap(PatchNet(), modality="image", classes=data.classes)
    wrapped = audit.wrap(PatchNet(output=output), modality="image", classes=data.classes)
    np.testing.assert_allclose(wrapped.predict_proba(data), plain.predict_proba(data))
    assert (wrapped.predict(data) == y).all()
    saliency = audit.explain(wrapped, data, method="saliency")
    assert saliency[y == 1][:, 0, :2, :2].mean() > saliency[y == 1][:, 0, 4:, 4:].mean() * 5


def test_unusable_outputs_are_refused_in_one_line():
    class Strings(nn.Module):
        def forward(self, x):
            return "logits"

    data = audit.Dataset.from_arrays(*patch_images(), classes=["plain", "patch"])
    model = audit.wrap(Strings(), modality="image", classes=data.classes)
    with pytest.raises(AuditInputError, match="returned str; expected a logits tensor"):
        model.predict(data)


def test_channels_last_module_and_data():
    x, y = patch_images()
    nhwc = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    data = audit.Dataset.from_arrays(nhwc, y, classes=["plain", "patch"], layout="NHWC")
    np.testing.assert_array_equal(data.inputs, x)
    model = audit.wrap(PatchNet(channels_last=True), modality="image", classes=data.classes, layout="NHWC")
    assert (model.predict(data) == y).all()
    run = audit.run(model, data, analyzers=["performance", "saliency"])
    assert all(r.status == "ok" for r in run.results)


def test_undeclared_channels_last_data_are_refused_with_the_fix():
    x, y = patch_images()
    with pytest.raises(AuditInputError, match=r"look channels-last .*layout='NHWC'"):
        audit.Dataset.from_arrays(np.zeros((4, 32, 32, 3)), [0, 1, 0, 1])
    data = audit.Dataset.from_arrays(x, y)
    model = audit.wrap(PatchNet(), modality="image", classes=data.classes, input_shape=(3, 16, 16))
    with pytest.raises(AuditInputError, match=r"images of shape \(3, 8, 8\), the model expects"):
        model.predict(data)


def test_normalisation_lives_in_the_model_so_attacks_stay_in_pixel_space():
    x, y = patch_images()
    mean, std = [0.5, 0.4, 0.3], [0.2, 0.25, 0.5]
    data = audit.Dataset.from_arrays(x, y, classes=["plain", "patch"])
    model = audit.wrap(PatchNet(), modality="image", classes=data.classes, mean=mean, std=std)
    normalised = (x - np.array(mean, np.float32)[:, None, None]) / np.array(std, np.float32)[:, None, None]
    direct = torch.softmax(PatchNet()(torch.from_numpy(normalised)), dim=1).detach().numpy()
    np.testing.assert_allclose(model.predict_proba(data), direct, rtol=1e-5, atol=1e-6)
    assert model.encode(data).max() <= 1.0  # pixels, not normalised values, are what attacks perturb
    with pytest.raises(AuditInputError, match="std must be positive"):
        audit.wrap(PatchNet(), modality="image", classes=data.classes, mean=mean, std=[0.2, 0.0, 1.0])


def test_extra_forward_inputs_come_from_the_batch():
    x, y = patch_images()
    data = audit.Dataset.from_arrays(x, y, classes=["plain", "patch"])
    plain = audit.wrap(PatchNet(), modality="image", classes=data.classes)
    scaled = audit.wrap(PatchNet(), modality="image", classes=data.classes,
                        extra_inputs=lambda batch: {"scale": torch.full((len(batch),), 3.0)})
    logit_plain = np.log(plain.predict_proba(data)[:, 1] / plain.predict_proba(data)[:, 0])
    logit_scaled = np.log(scaled.predict_proba(data)[:, 1] / scaled.predict_proba(data)[:, 0])
    np.testing.assert_allclose(logit_scaled, 3 * logit_plain, rtol=1e-4)


def test_integer_labels_index_the_class_names():
    x, y = patch_images()
    data = audit.Dataset.from_arrays(x, y, classes=["plain", "patch"])
    assert data.classes == ("plain", "patch") and (data.labels == y).all()
    with pytest.raises(AuditInputError, match=r"class indices \[2\] outside 0..1"):
        audit.Dataset.from_arrays(x, y * 2, classes=["plain", "patch"])


def test_npz_carries_class_names(tmp_path):
    x, y = patch_images()
    path = tmp_path / "patches.npz"
    np.savez(path, x=x, y=y, classes=np.array(["plain", "patch"]))
    data = read_data(path)
    assert data.classes == ("plain", "patch") and (data.labels == y).all()
    np.savez(path, x=x, y=y.astype(float), classes=np.array(["plain", "patch"]))
    with pytest.raises(AuditInputError, match="y must hold integer indices"):
        read_data(path)


def test_a_single_class_slice_is_audited_and_the_performance_says_what_it_averages():
    x, y = patch_images()
    model = audit.wrap(PatchNet(), modality="image", classes=["plain", "patch"])
    with pytest.raises(AuditInputError, match=r"single class .*classes=model.classes"):
        audit.Dataset.from_arrays(x[y == 1], y[y == 1])
    patches = audit.Dataset.from_arrays(x[y == 1], y[y == 1], classes=model.classes)
    run = audit.run(model, patches, analyzers=["performance", "saliency"])
    performance = run.result("performance")
    assert performance.metrics["performance.accuracy"] == 1.0
    assert performance.metrics["performance.macro_f1"] == 1.0  # the absent class does not count as F1 = 0
    assert any("1 of the model's 2 classes (none of plain)" in w for w in performance.warnings)
    assert run.result("saliency").status == "ok"
    both = audit.run(model, audit.Dataset.from_arrays(x, y, classes=model.classes), analyzers=["performance"])
    assert both.result("performance").warnings == ()
