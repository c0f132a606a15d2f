"""A LeNet-style convolutional network sized from the image shape."""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn as nn

from raydl.models import MODELS


@MODELS.register("cnn")
def cnn(
    input_shape: tuple[int, ...],
    num_outputs: int,
    channels: Sequence[int] = (32, 64),
    kernel_size: int = 3,
    hidden: int = 128,
    dropout: float = 0.0,
    batch_norm: bool = True,
) -> nn.Module:
    """[Conv → (BatchNorm) → ReLU → MaxPool(2)] per entry of ``channels`` → Linear(hidden)
    → ReLU → Dropout → Linear(num_outputs). A stage stops pooling once the map is 1 pixel.
    """
    if len(input_shape) != 3:
        raise ValueError(
            f"cnn needs image input (channels, height, width), got shape {tuple(input_shape)}; "
            "set data.image.shape for flat pixel columns"
        )
    c, h, w = input_shape
    layers: list[nn.Module] = []
    for out in channels:
        # a bias before BatchNorm is cancelled by it: gradient ~0, and Adam turns that noise
        # into a random walk (it made DDP and ZeRO differ)
        layers.append(nn.Conv2d(c, out, kernel_size, padding=kernel_size // 2, bias=not batch_norm))
        if batch_norm:
            layers.append(nn.BatchNorm2d(out))
        layers.append(nn.ReLU())
        if min(h, w) >= 2:
            layers.append(nn.MaxPool2d(2))
            h, w = h // 2, w // 2
        c = out
    layers += [
        nn.Flatten(),  # (B, C*H*W)
        nn.Linear(c * h * w, hidden),
        nn.ReLU(),
        nn.Dropout(dropout),
        nn.Linear(hidden, num_outputs),
    ]
    return nn.Sequential(*layers)
