"""Gradient accumulation: ``train.grad_accumulation`` micro-batches add their gradients
before one optimizer step.

The loop reads an epoch as *windows* of up to ``k`` micro-batches; the last window of an
epoch may be short (``m < k``), so no gradient is carried into the next epoch. Each
micro-batch's loss is divided by its window's size, so a window's gradient is the mean
over its micro-batches whether the window is full (``1/k``) or short (``1/m``, i.e. the
``1/k`` gradient rescaled by ``k/m``). Under DDP the non-final micro-steps run in
``no_sync`` so gradients are all-reduced once per optimizer step, not once per
micro-batch."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import nullcontext
from typing import Any, Protocol, TypeVar, runtime_checkable

import torch.nn as nn

T = TypeVar("T")


def windows(items: Iterable[T], every: int) -> Iterator[list[T]]:
    """``items`` in consecutive lists of ``every`` (the last one may be shorter)."""
    window: list[T] = []
    for item in items:
        window.append(item)
        if len(window) == every:
            yield window
            window = []
    if window:
        yield window


@runtime_checkable
class _Syncs(Protocol):
    """A model that all-reduces its gradients unless inside ``no_sync()`` (DDP)."""

    def no_sync(self) -> Any: ...


def sync_context(model: nn.Module, step: bool) -> Any:
    """``model.no_sync()`` on a DDP model's non-final micro-step, else nothing."""
    if not step and isinstance(model, _Syncs):
        return model.no_sync()
    return nullcontext()


def optimizer_steps(batches: int, every: int) -> int:
    """Optimizer steps in an epoch of ``batches`` micro-batches."""
    return max(1, -(-batches // every))
