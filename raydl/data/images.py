"""Image decoding, the one implementation training and serving share: PNG/JPEG bytes, a
base64 string (optionally a ``data:image/...;base64,`` URL), a local file path, or an
already-decoded ``uint8`` array → the colour mode → the size → ``(C, H, W)`` float32.

Pillow decodes one image at a time; a batch is a loop over its rows. Ray-free: the data
stage calls this inside ``map_batches``, the Predictor calls it on a request's rows.
"""

from __future__ import annotations

import base64
import binascii
import io
import os
from typing import Any

import numpy as np

CHANNELS_TO_MODE = {1: "L", 3: "RGB"}


class ImageProblem(ValueError):
    """A value that is not an image this model can take; the message says why."""


def image_bytes(value: Any) -> bytes | np.ndarray:
    """The encoded bytes of one image value (or a decoded array, as given).

    Raises:
        ImageProblem: the value is text that is neither a file nor base64 image data, or
            of a type that holds no image.
    """
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    if isinstance(value, np.ndarray) and value.dtype.kind in "uif" and value.ndim in (2, 3):
        return value
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("data:"):
            _, _, text = text.partition(",")
        elif os.path.isfile(os.path.expanduser(text)):
            with open(os.path.expanduser(text), "rb") as f:
                return f.read()
        try:
            return base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise ImageProblem("neither a readable image file nor base64 image data") from None
    raise ImageProblem(f"expected image bytes, base64 text or a file path, not {type(value).__name__}")


def decode(value: Any, mode: str, size: tuple[int, int]) -> np.ndarray:
    """One image as ``(C, H, W)`` float32 pixel values (0-255), in ``mode`` ("L" or "RGB")
    and ``size`` (height, width): converted to the mode first, then resized (bilinear).

    Raises:
        ImageProblem: the value does not decode as an image.
    """
    from PIL import Image, UnidentifiedImageError

    data = image_bytes(value)
    try:
        if isinstance(data, np.ndarray):
            img = Image.fromarray(np.clip(data, 0, 255).astype(np.uint8))
        else:
            img = Image.open(io.BytesIO(data))
            img.load()
        img = img.convert(mode)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
        raise ImageProblem(f"cannot decode as an image ({_reason(e)})") from None
    height, width = size
    if img.size != (width, height):
        img = img.resize((width, height), resample=Image.Resampling.BILINEAR)
    pixels = np.asarray(img, dtype=np.float32)
    return pixels[None] if pixels.ndim == 2 else np.ascontiguousarray(np.moveaxis(pixels, -1, 0))


def _reason(e: BaseException) -> str:
    text = str(e).split(" <_io.")[0]  # PIL names the in-memory file object: not for users
    return text or type(e).__name__


def decode_batch(values: np.ndarray, mode: str, size: tuple[int, int]) -> tuple[np.ndarray, dict[int, str]]:
    """A batch of image values → ``(float32 (B, C, H, W), {row: why it failed})``; a row
    that fails is zeros in the array."""
    channels = 1 if mode == "L" else 3
    out = np.zeros((len(values), channels, *size), dtype=np.float32)
    problems: dict[int, str] = {}
    for i, v in enumerate(values):
        try:
            out[i] = decode(v, mode, size)
        except ImageProblem as e:
            problems[i] = str(e)
    return out, problems
