"""Residual networks: a small one for 28×28/32×32 images and the ResNet-18 shape."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn

from raydl.models import MODELS


class BasicBlock(nn.Module):
    """Two 3×3 convolutions with an identity (or 1×1 projection) shortcut."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False),
            nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True),
            nn.Conv2d(c_out, c_out, 3, padding=1, bias=False),
            nn.BatchNorm2d(c_out),
        )
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.shortcut(x))


def _resnet(input_shape, num_outputs, widths, blocks, dropout) -> nn.Module:
    if len(input_shape) != 3:
        raise ValueError(
            f"resnet needs image input (channels, height, width), got shape {tuple(input_shape)}; "
            "set data.image.shape for flat pixel columns"
        )
    if len(widths) != len(blocks) or not widths:
        raise ValueError(f"widths and blocks must be non-empty lists of one length, got {widths}, {blocks}")
    # A 3×3 stem without the ImageNet 7×7/stride-2 + max-pool: small images keep their detail.
    layers: list[nn.Module] = [
        nn.Conv2d(input_shape[0], widths[0], 3, padding=1, bias=False),
        nn.BatchNorm2d(widths[0]),
        nn.ReLU(inplace=True),
    ]
    c = widths[0]
    for i, (w, n) in enumerate(zip(widths, blocks, strict=True)):
        for j in range(n):
            layers.append(BasicBlock(c, w, stride=2 if (i > 0 and j == 0) else 1))
            c = w
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout), nn.Linear(c, num_outputs)]
    return nn.Sequential(*layers)


@MODELS.register("resnet")
def resnet(
    input_shape: tuple[int, ...],
    num_outputs: int,
    widths: Sequence[int] = (16, 32, 64),
    blocks: Sequence[int] = (1, 1, 1),
    dropout: float = 0.0,
) -> nn.Module:
    """A small residual net: stem → stages of BasicBlocks (each stage after the first halves
    the map) → global average pool → Linear. Defaults suit 28×28 and 32×32 images."""
    return _resnet(input_shape, num_outputs, list(widths), list(blocks), dropout)


@MODELS.register("resnet18")
def resnet18(
    input_shape: tuple[int, ...], num_outputs: int, width: int = 64, dropout: float = 0.0
) -> nn.Module:
    """The ResNet-18 shape (2-2-2-2 BasicBlocks, widths ×1 ×2 ×4 ×8 of ``width``) with a
    small-image stem; ``width: 64`` is the paper's 11 M-parameter network."""
    return _resnet(input_shape, num_outputs, [width, 2 * width, 4 * width, 8 * width], [2, 2, 2, 2], dropout)
