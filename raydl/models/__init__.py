"""The model zoo. A builder is ``build(input_shape, num_outputs, **params) -> nn.Module``:
``input_shape`` is one example's shape after preprocessing (``(F,)`` or ``(C, H, W)``),
``num_outputs`` the classes (classification) or 1 (regression).

Each family's module registers its builders in :data:`raydl.catalog.MODELS`, where every
name is declared; a builder's module is imported the first time it is asked for.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import torch.nn as nn

from raydl.catalog import MODELS
from raydl.checks import check_model_params
from raydl.errors import RaydlError

ModelBuilder = Callable[..., nn.Module]


def check_params(arch: str, params: dict[str, Any]) -> list[str]:
    """Problems with ``params`` for ``arch``, one ``model.params.<key>: …`` line each;
    empty when the arch is unknown. See :func:`raydl.checks.check_model_params`."""
    return check_model_params(arch, params)


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
