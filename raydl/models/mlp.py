"""A multi-layer perceptron; image inputs are flattened."""

from __future__ import annotations

import math

import torch.nn as nn

from raydl.models import MODELS

_ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh, "silu": nn.SiLU}


@MODELS.register("mlp")
def mlp(
    input_shape: tuple[int, ...],
    num_outputs: int,
    hidden: list[int] = (128, 64),  # type: ignore[assignment]
    dropout: float = 0.0,
    activation: str = "relu",
    batch_norm: bool = False,
) -> nn.Module:
    """Flatten → [Linear → (BatchNorm) → activation → Dropout] × len(hidden) → Linear."""
    if activation not in _ACTIVATIONS:
        raise ValueError(f"activation must be one of {', '.join(_ACTIVATIONS)}, got {activation!r}")
    if not 0 <= dropout < 1:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}")
    layers: list[nn.Module] = [nn.Flatten()]
    width = math.prod(input_shape)
    for h in hidden:
        layers.append(nn.Linear(width, h))
        if batch_norm:
            layers.append(nn.BatchNorm1d(h))
        layers += [_ACTIVATIONS[activation](), nn.Dropout(dropout)]
        width = h
    layers.append(nn.Linear(width, num_outputs))
    return nn.Sequential(*layers)
