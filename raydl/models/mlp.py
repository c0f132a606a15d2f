"""A multi-layer perceptron; image inputs are flattened. Categorical columns given as
integer ids (``data.features.categorical: onehot`` above ``max_onehot`` values) arrive as
the last columns of ``x`` and are embedded, one table per column."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn as nn

from raydl.models import MODELS

_ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh, "silu": nn.SiLU}


class _EmbedIds(nn.Module):
    """(B, dense + k) → (B, dense + sum of embedding widths): the last k columns are ids."""

    def __init__(self, cardinalities: list[int], dim: int | None):
        super().__init__()
        self.k = len(cardinalities)
        # a common rule of thumb: about half the categories, at most `dim` (default 16)
        tables = [nn.Embedding(n, min(dim or 16, max(2, (n + 1) // 2))) for n in cardinalities]
        self.tables = nn.ModuleList(tables)
        self.width = sum(t.embedding_dim for t in tables)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dense, ids = x[:, : x.shape[1] - self.k], x[:, x.shape[1] - self.k :].long()
        return torch.cat([dense, *(t(ids[:, i]) for i, t in enumerate(self.tables))], dim=1)


@MODELS.register("mlp")
def mlp(
    input_shape: tuple[int, ...],
    num_outputs: int,
    hidden: Sequence[int] = (128, 64),
    dropout: float = 0.0,
    activation: str = "relu",
    batch_norm: bool = False,
    id_cardinalities: list[int] | None = None,
    embedding_dim: int | None = None,
) -> nn.Module:
    """Flatten → (embed id columns) → [Linear → (BatchNorm) → activation → Dropout] ×
    len(hidden) → Linear. ``id_cardinalities`` comes from the preprocessing (ids per id
    column, 0 = unknown); ``embedding_dim`` caps each embedding's width (default 16)."""
    if activation not in _ACTIVATIONS:
        raise ValueError(f"activation must be one of {', '.join(_ACTIVATIONS)}, got {activation!r}")
    if not 0 <= dropout < 1:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}")
    layers: list[nn.Module] = [nn.Flatten()]
    width = math.prod(input_shape)
    if id_cardinalities:
        embed = _EmbedIds(list(id_cardinalities), embedding_dim)
        layers.append(embed)
        width += embed.width - embed.k
    for h in hidden:
        layers.append(nn.Linear(width, h, bias=not batch_norm))  # BatchNorm has its own shift
        if batch_norm:
            layers.append(nn.BatchNorm1d(h))
        layers += [_ACTIVATIONS[activation](), nn.Dropout(dropout)]
        width = h
    layers.append(nn.Linear(width, num_outputs))
    return nn.Sequential(*layers)
