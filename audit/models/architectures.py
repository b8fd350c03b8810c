"""The registered architectures: MLP for tables, CNN for images, LSTM and Transformer for text.

Every factory takes the input dimensions (filled in from the data's encoder) and
`num_classes`, plus keyword options with defaults. Text models expose their token
embedding as `.embedding`, where attributions on tokens are taken.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from audit.core.encoders import Tokenizer
from audit.models.registry import Probability, register_model


@register_model("mlp", modalities=("tabular",), description="multilayer perceptron over encoded table features")
def mlp(*, in_features: int, num_classes: int, hidden: tuple[int, ...] = (64, 32),
        dropout: Probability = 0.1) -> nn.Module:
    layers: list[nn.Module] = []
    width = in_features
    for size in hidden:
        layers += [nn.Linear(width, size), nn.ReLU(), nn.Dropout(dropout)]
        width = size
    layers.append(nn.Linear(width, num_classes))
    return nn.Sequential(*layers)


class ConvNet(nn.Module):
    def __init__(self, in_channels: int, height: int, width: int, num_classes: int,
                 channels: tuple[int, ...], hidden: int, dropout: float):
        super().__init__()
        blocks: list[nn.Module] = []
        c = in_channels
        for i, out in enumerate(channels):
            blocks += [nn.Conv2d(c, out, kernel_size=3, padding=1), nn.ReLU()]
            if i < len(channels) - 1:
                blocks.append(nn.MaxPool2d(2))
                height, width = height // 2, width // 2
            c = out
        self.features = nn.Sequential(*blocks)
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Dropout(dropout), nn.Linear(c * height * width, hidden), nn.ReLU(),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


@register_model("cnn", modalities=("image",), description="convolutional network (3x3 convolutions, max-pooling)")
def cnn(*, in_channels: int, height: int, width: int, num_classes: int, channels: tuple[int, ...] = (16, 32),
        hidden: int = 64, dropout: Probability = 0.2) -> nn.Module:
    return ConvNet(in_channels, height, width, num_classes, tuple(channels), hidden, dropout)


def masked_mean(h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over the non-padding positions of (N, L, D) states; mask is (N, L), True for tokens."""
    weights = mask.unsqueeze(-1).to(h.dtype)
    return (h * weights).sum(1) / weights.sum(1).clamp(min=1.0)


class LSTMClassifier(nn.Module):
    padding_invariant = True  # packed sequences: trailing padding changes nothing

    def __init__(self, vocab_size: int, num_classes: int, embed_dim: int, hidden: int, dropout: float):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=Tokenizer.PAD)
        self.encoder = nn.LSTM(embed_dim, hidden, batch_first=True, bidirectional=True)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(2 * hidden, num_classes)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        mask = ids != Tokenizer.PAD
        # Packing makes the output independent of how much padding follows the tokens.
        lengths = mask.sum(1).clamp(min=1).cpu()
        packed = pack_padded_sequence(self.dropout(self.embedding(ids)), lengths, batch_first=True,
                                      enforce_sorted=False)
        h, _ = pad_packed_sequence(self.encoder(packed)[0], batch_first=True, total_length=ids.shape[1])
        return self.head(self.dropout(masked_mean(h, mask)))


@register_model("lstm", modalities=("text",), description="bidirectional LSTM over token embeddings, mean-pooled")
def lstm(*, vocab_size: int, num_classes: int, max_length: int = 64, embed_dim: int = 64, hidden: int = 64,
         dropout: Probability = 0.3) -> nn.Module:
    return LSTMClassifier(vocab_size, num_classes, embed_dim, hidden, dropout)


class TransformerClassifier(nn.Module):
    padding_invariant = True  # padding is masked in attention and pooling

    def __init__(self, vocab_size: int, num_classes: int, max_length: int, embed_dim: int, heads: int,
                 layers: int, dropout: float):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=Tokenizer.PAD)
        self.position = nn.Parameter(torch.zeros(1, max_length, embed_dim))
        layer = nn.TransformerEncoderLayer(embed_dim, heads, dim_feedforward=2 * embed_dim, dropout=dropout,
                                           batch_first=True)
        # The nested-tensor fast path skips hooks that captum and our checks rely on.
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(embed_dim, num_classes)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        mask = ids != Tokenizer.PAD
        h = self.embedding(ids) + self.position[:, : ids.shape[1]]
        # An all-padding row would make attention NaN; let it attend to position 0.
        padding = ~mask
        padding[:, 0] = False
        h = self.encoder(self.dropout(h), src_key_padding_mask=padding)
        return self.head(self.dropout(masked_mean(h, mask)))


@register_model("transformer", modalities=("text",), description="transformer encoder over token embeddings, mean-pooled")
def transformer(*, vocab_size: int, num_classes: int, max_length: int = 64, embed_dim: int = 64, heads: int = 4,
                layers: int = 2, dropout: Probability = 0.1) -> nn.Module:
    return TransformerClassifier(vocab_size, num_classes, max_length, embed_dim, heads, layers, dropout)
