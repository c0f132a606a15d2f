"""Gradient accumulation: ``train.grad_accumulation`` micro-batches add their gradients
before one optimizer step. Under DDP the non-final micro-steps run in ``no_sync`` so
gradients are all-reduced once per optimizer step, not once per micro-batch."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import nullcontext
from typing import Any, TypeVar

import torch.nn as nn

T = TypeVar("T")


def with_last(items: Iterable[T]) -> Iterator[tuple[T, bool]]:
    """Each item with whether it is the last one (a one-item look-ahead)."""
    it = iter(items)
    try:
        prev = next(it)
    except StopIteration:
        return
    for item in it:
        yield prev, False
        prev = item
    yield prev, True


def is_step(index: int, last: bool, every: int) -> bool:
    """Whether micro-batch ``index`` (0-based) ends an accumulation window; the epoch's
    last batch always does, so no gradient is carried into the next epoch."""
    return last or (index + 1) % every == 0


def sync_context(model: nn.Module, step: bool) -> Any:
    """``model.no_sync()`` on a DDP model's non-final micro-step, else nothing."""
    if not step and hasattr(model, "no_sync"):
        return model.no_sync()
    return nullcontext()


def optimizer_steps(batches: int, every: int) -> int:
    """Optimizer steps in an epoch of ``batches`` micro-batches."""
    return max(1, -(-batches // every))
