"""A small vision Transformer: patch embedding, a class token, a Transformer encoder."""

from __future__ import annotations

import torch
import torch.nn as nn

from raydl.models import MODELS


class ViT(nn.Module):
    def __init__(self, input_shape, num_outputs, patch, dim, depth, heads, mlp_ratio, dropout) -> None:
        super().__init__()
        c, h, w = input_shape
        if h % patch or w % patch:
            raise ValueError(f"patch ({patch}) must divide the image size {h}×{w}")
        self.embed = nn.Conv2d(c, dim, patch, stride=patch)  # (B, dim, h/p, w/p)
        n = (h // patch) * (w // patch)
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos = nn.Parameter(torch.randn(1, n + 1, dim) * 0.02)
        layer = nn.TransformerEncoderLayer(
            dim, heads, int(dim * mlp_ratio), dropout, activation="gelu", batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.embed(x).flatten(2).transpose(1, 2)  # (B, N, dim)
        tokens = torch.cat([self.cls.expand(len(x), -1, -1), tokens], dim=1) + self.pos
        return self.head(self.norm(self.encoder(tokens)[:, 0]))


@MODELS.register("vit")
def vit(
    input_shape: tuple[int, ...],
    num_outputs: int,
    patch: int = 4,
    dim: int = 64,
    depth: int = 4,
    heads: int = 4,
    mlp_ratio: float = 2.0,
    dropout: float = 0.0,
) -> nn.Module:
    """Non-overlapping ``patch``×``patch`` patches → ``depth`` pre-norm encoder layers →
    the class token's LayerNorm → Linear."""
    if len(input_shape) != 3:
        raise ValueError(
            f"vit needs image input (channels, height, width), got shape {tuple(input_shape)}; "
            "set data.image.shape for flat pixel columns"
        )
    if dim % heads:
        raise ValueError(f"dim ({dim}) must be a multiple of heads ({heads})")
    return ViT(tuple(input_shape), num_outputs, patch, dim, depth, heads, mlp_ratio, dropout)
