"""A bag-of-embeddings text classifier: the mean of the token embeddings (padding
excluded) through a small MLP. Fast and strong enough for topic classification."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn

from raydl.models import MODELS


class EmbeddingBagClassifier(nn.Module):
    def __init__(
        self, vocab_size: int, pad_id: int, dim: int, hidden: list[int], dropout: float, outputs: int
    ):
        super().__init__()
        # mode="mean" with padding_idx: pad tokens neither count in the mean nor get gradients
        self.embed = nn.EmbeddingBag(vocab_size, dim, mode="mean", padding_idx=pad_id)
        layers: list[nn.Module] = []
        width = dim
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU(), nn.Dropout(dropout)]
            width = h
        layers.append(nn.Linear(width, outputs))
        self.head = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x.long()))  # (B, L) ids → (B, dim) → (B, outputs)


@MODELS.register("embedding_bag")
def embedding_bag(
    input_shape: tuple[int, ...],
    num_outputs: int,
    vocab_size: int,
    pad_id: int = 0,
    dim: int = 64,
    hidden: Sequence[int] = (),
    dropout: float = 0.0,
) -> nn.Module:
    """Token ids ``(B, max_length)`` → logits. ``vocab_size`` and ``pad_id`` come from
    the text preprocessor's ``data_info`` unless ``model.params`` sets them."""
    if len(input_shape) != 1:
        raise ValueError(f"needs token ids of shape (max_length,), got input shape {list(input_shape)}")
    if not 0 <= dropout < 1:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}")
    return EmbeddingBagClassifier(vocab_size, pad_id, dim, list(hidden), dropout, num_outputs)
