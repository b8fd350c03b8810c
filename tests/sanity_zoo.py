"""A zoo of small trained models and attributions known to ignore the model, for ground-truth
tests of the model-randomization sanity check (Adebayo et al. 2018).

Models: an MLP on a table, CNNs on digits, a ResNet-style CNN (residual `+=`, BatchNorm,
`ReLU(inplace=True)`), a CNN on 3x32x32 RGB images of an easy planted task, an LSTM, a
transformer and a tiny BERT (the Hugging Face model kind: WordPiece subwords grouped into words)
on text. Insensitive attributions: the input itself, an edge detector of the input
(a Sobel filter of each image channel; |x - mean of the neighbours| along tables and texts) and,
on CNNs, Guided Backprop (insensitive to the upper layers: Adebayo et al. 2018, Nie et al. 2018).
Import with `from sanity_zoo import ...` (pytest puts tests/ on the path).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from captum.attr import GuidedBackprop
from hf_helpers import MAX_LENGTH, tiny_bert, wordpiece_tokenizer
from planted import patched_digits_cnn, train_on, trigger_lstm, trigger_word_reviews, two_feature_mlp, two_feature_table
from torch import nn

import audit
from audit.methods.attributions.captum_methods import attribute
from audit.core.dataset import Dataset
from audit.models.architectures import cnn

SOUND = ("saliency", "integrated_gradients")


# -- attributions that ignore the model -----------------------------------------------------------


def input_itself(model, data, target, *, seed=0):
    return model.encode(data).float().numpy()


def edge_detector(model, data, target, *, seed=0):
    x = model.encode(data).float()
    if model.modality == "image":
        kx = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])
        kernels = torch.stack([kx, kx.T])[:, None]
        gradients = F.conv2d(x.reshape(-1, 1, *x.shape[-2:]), kernels, padding=1)
        return gradients.norm(dim=1).reshape(x.shape).numpy()
    ends = F.pad(x[:, None], (1, 1), mode="replicate")[:, 0]
    return (x - (ends[:, :-2] + ends[:, 2:]) / 2).abs().numpy()


def guided_backprop(model, data, target, *, seed=0):
    return attribute(model, data, target, lambda x, t, rows: GuidedBackprop(model.module).attribute(x, target=t),
                     evaluations=1, seed=seed, method="guided_backprop")


INSENSITIVE = {"input_itself": input_itself, "edge_detector": edge_detector, "guided_backprop": guided_backprop}


# -- models -------------------------------------------------------------------------------------------


class Block(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += x
        return self.relu(out)


class TinyResNet(nn.Module):
    """Two residual blocks as in torchvision's ResNet (in-place ReLU, `+=` on the skip)."""

    def __init__(self, in_channels: int, num_classes: int, channels: int = 16):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, channels, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(channels), nn.ReLU(inplace=True))
        self.block1 = Block(channels)
        self.block2 = Block(channels)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(self.block2(self.block1(self.stem(x)))), 1))


def fit(module: nn.Module, data: Dataset, *, epochs: int, lr: float = 0.003, seed: int = 0) -> nn.Module:
    """`module` trained (seeded) with Adam on the images of `data`."""
    torch.manual_seed(seed)
    x, y = torch.as_tensor(data.inputs, dtype=torch.float32), torch.as_tensor(data.labels)
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(module.parameters(), lr=lr)
    module.train()
    for _ in range(epochs):
        for rows in torch.randperm(len(x), generator=generator).split(64):
            optimizer.zero_grad()
            F.cross_entropy(module(x[rows]), y[rows]).backward()
            optimizer.step()
    return module.eval()


def squares(n: int, *, seed: int) -> Dataset:
    """3x32x32 images of uniform noise in [0, 0.5] with one 6x6 square at a random place: red
    (class "red") or green (class "green")."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.0, 0.5, size=(n, 3, 32, 32)).astype(np.float32)
    y = rng.integers(0, 2, n)
    for image, label, (r, c) in zip(x, y, rng.integers(2, 24, size=(n, 2))):
        image[:, r : r + 6, c : c + 6] = 0.0
        image[0 if label else 1, r : r + 6, c : c + 6] = 1.0
    return Dataset(x, y, ("green", "red"), "image", name="squares")


def digits_resnet(seed: int = 0) -> audit.Model:
    train = audit.load_dataset("digits", "train")
    torch.manual_seed(seed)
    return audit.wrap(fit(TinyResNet(1, len(train.classes)), train, epochs=4, seed=seed), modality="image",
                      classes=train.classes)


def rgb_cnn(seed: int = 0) -> audit.Model:
    train = squares(1000, seed=seed)
    torch.manual_seed(seed)
    net = cnn(in_channels=3, height=32, width=32, num_classes=2, channels=(8, 16), hidden=32, dropout=0.0)
    return audit.wrap(fit(net, train, epochs=3, seed=seed), modality="image", classes=train.classes)


def text_transformer(seed: int = 0) -> audit.Model:
    return train_on("transformer", trigger_word_reviews(), epochs=3, lr=0.003, seed=seed,
                    model_config={"embed_dim": 16, "heads": 2, "layers": 1})


def hugging_face_bert(seed: int = 0) -> audit.Model:
    tokenizer = wordpiece_tokenizer()
    train = trigger_word_reviews()[0]
    return audit.from_transformers(tiny_bert(tokenizer, train, epochs=4, seed=seed), tokenizer, max_length=MAX_LENGTH)


#: name -> (trained model, data to explain, whether Guided Backprop applies: CNNs with nn.ReLU modules)
ZOO = {
    "mlp": (lambda: two_feature_mlp(True), lambda: two_feature_table()[2], False),
    "cnn": (lambda: patched_digits_cnn(True), lambda: audit.load_dataset("digits", "test"), True),
    "resnet": (digits_resnet, lambda: audit.load_dataset("digits", "test"), True),
    "rgb_cnn": (rgb_cnn, lambda: squares(200, seed=1), True),
    "lstm": (lambda: trigger_lstm(True), lambda: trigger_word_reviews()[2], False),
    "transformer": (text_transformer, lambda: trigger_word_reviews()[2], False),
    "tiny_bert": (hugging_face_bert, lambda: trigger_word_reviews()[2], False),
}
