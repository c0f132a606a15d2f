"""The model zoo. A builder is ``build(input_shape, num_outputs, **params) -> nn.Module``:
``input_shape`` is one example's shape after preprocessing (``(F,)`` or ``(C, H, W)``),
``num_outputs`` the classes (classification) or 1 (regression)."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import torch.nn as nn

from raydl.errors import RaydlError
from raydl.registry import Registry, did_you_mean

ModelBuilder = Callable[..., nn.Module]
MODELS: Registry[ModelBuilder] = Registry("model")

# Registration happens on import of each family's module.
from raydl.models import (  # noqa: E402,F401
    cnn,
    embedding_bag,
    mlp,
    pretrained,
    resnet,
    rnn,
    transformers_zoo,
    vae,
    vit,
)


def check_params(arch: str, params: dict[str, Any]) -> list[str]:
    """Problems with ``params`` for the builder of ``arch`` (unknown names), as messages
    ``(key, message)`` relative to ``model.params``. Empty when the arch is unknown."""
    problem = MODELS.check(arch)
    if problem:
        return []
    sig = inspect.signature(MODELS.get(arch))
    if any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values()):
        return []
    allowed = [n for n in sig.parameters if n not in ("input_shape", "num_outputs")]
    return [
        f"model.params.{k}: unknown parameter of model {arch!r}; "
        f"{did_you_mean(k, allowed)}allowed: {', '.join(allowed)}"
        for k in params
        if k not in allowed
    ]


def build_model(
    arch: str,
    input_shape: tuple[int, ...],
    num_outputs: int,
    params: dict[str, Any],
    data_info: dict[str, Any] | None = None,
) -> nn.Module:
    """Build a registered (or ``module:function``) model. Each ``data_info`` key (facts
    of the preprocessed input, e.g. a text's ``vocab_size``) is passed to a builder with
    a parameter of that name, unless ``params`` sets it.

    Raises:
        RaydlError: the model cannot be built for this data (e.g. a CNN on flat rows).
    """
    builder = MODELS.get(arch)
    accepted = inspect.signature(builder).parameters
    extra = {k: v for k, v in (data_info or {}).items() if k in accepted and k not in params}
    try:
        model = builder(input_shape=tuple(input_shape), num_outputs=num_outputs, **extra, **params)
    except (TypeError, ValueError) as e:
        raise RaydlError(f"model.params: cannot build {arch!r} with {params}: {e}") from e
    if not isinstance(model, nn.Module):
        raise RaydlError(f"model.arch: {arch!r} returned {type(model).__name__}, not nn.Module")
    return model
