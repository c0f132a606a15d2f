"""Training control: what happens to a step whose gradients blew up.

A step is *bad* when its global gradient norm is NaN/Inf (a NaN or Inf loss on any
worker makes the all-reduced gradients non-finite too) or above ``train.grad_norm_limit``.
The norm is the same on every rank after DDP's all-reduce, so every rank takes the same
decision without another collective: ``train.on_bad_step: stop`` ends the run with a
message naming the epoch and step, ``skip`` drops the step's update and counts it.
"""

from __future__ import annotations

import math

from raydl.errors import RaydlError


class BadStepError(RaydlError):
    """Training stopped on a NaN/Inf loss or an exploding gradient norm."""


def bad_step_reason(grad_norm: float | None, limit: float | None) -> str | None:
    """Why a step with this global gradient norm is bad, or None when it is fine."""
    if grad_norm is None:
        return None
    if not math.isfinite(grad_norm):
        return f"the gradient norm is {grad_norm} (a NaN/Inf loss or overflow)"
    if limit is not None and grad_norm > limit:
        return f"the gradient norm {grad_norm:.4g} exceeds train.grad_norm_limit {limit:g}"
    return None


def stop_message(epoch: int, step: int, reason: str) -> str:
    return (
        f"train: stopped at epoch {epoch}, step {step}: {reason}; lower train.optimizer.lr, "
        "set train.grad_clip, or set train.on_bad_step: skip"
    )
