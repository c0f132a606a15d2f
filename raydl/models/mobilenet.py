"""A MobileNet (v1) for small images: depthwise-separable convolutions, thinned by a
width multiplier. A light student for distillation (``compress.distill``)."""

from __future__ import annotations

import torch.nn as nn

from raydl.models import MODELS

# (output channels, stride) of each depthwise-separable block: MobileNet v1's first five
# (its 112×112 stages), enough for 8×8 to 32×32 images
PLAN = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1))
STEM = 32


def _thin(channels: int, width: float) -> int:
    """``channels × width``, rounded to a multiple of 8 (at least 8), as MobileNet does."""
    return max(8, int(channels * width + 4) // 8 * 8)


def _conv_bn(c_in: int, c_out: int, kernel: int, stride: int, groups: int = 1) -> list[nn.Module]:
    # no bias: the BatchNorm after it cancels one
    return [
        nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU6(inplace=True),
    ]


@MODELS.register("mobilenet")
def mobilenet(
    input_shape: tuple[int, ...], num_outputs: int, width: float = 1.0, dropout: float = 0.0
) -> nn.Module:
    """3×3 conv stem (stride 1: small images keep their detail) → five depthwise-separable
    blocks [3×3 depthwise → BN → ReLU6 → 1×1 pointwise → BN → ReLU6] of 64, 128, 128, 256,
    256 channels × ``width`` → global average pool → Dropout → Linear(num_outputs).
    A stride-2 block halves the map only while its short side is 4 pixels or more, so
    8×8 digits end at 2×2 and 28×28 images at 7×7."""
    if len(input_shape) != 3:
        raise ValueError(
            f"mobilenet needs image input (channels, height, width), got shape {tuple(input_shape)}; "
            "set data.image.shape for flat pixel columns"
        )
    if width <= 0:
        raise ValueError(f"width must be positive, got {width}")
    c_in, h, w = input_shape
    c = _thin(STEM, width)
    layers = _conv_bn(c_in, c, 3, 1)
    for out, stride in PLAN:
        s = stride if min(h, w) >= 4 else 1
        if s == 2:  # 3×3, padding 1, stride 2: ⌈side / 2⌉
            h, w = (h + 1) // 2, (w + 1) // 2
        out = _thin(out, width)
        layers += _conv_bn(c, c, 3, s, groups=c)  # depthwise: one 3×3 filter per channel
        layers += _conv_bn(c, out, 1, 1)  # pointwise: mixes channels
        c = out
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout), nn.Linear(c, num_outputs)]
    return nn.Sequential(*layers)  # (B, C, H, W) → (B, num_outputs)
