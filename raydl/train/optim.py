"""Optimizers, LR schedules and losses, each family in its registry.

Builders take the validated spec section, so a new entry needs no change elsewhere.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import torch
import torch.nn as nn

from raydl.registry import Registry
from raydl.spec import LossSpec, OptimizerSpec, SchedulerSpec

OPTIMIZERS: Registry[Callable[..., torch.optim.Optimizer]] = Registry("optimizer")
SCHEDULERS: Registry[Callable[..., torch.optim.lr_scheduler.LRScheduler | None]] = Registry("scheduler")
LOSSES: Registry[Callable[..., nn.Module]] = Registry("loss")


# ----------------------------------------------------------------- optimizers
@OPTIMIZERS.register("sgd")
def sgd(params: Iterable[nn.Parameter], spec: OptimizerSpec) -> torch.optim.Optimizer:
    return torch.optim.SGD(
        params,
        lr=spec.lr,
        momentum=spec.momentum,
        nesterov=spec.nesterov,
        weight_decay=spec.weight_decay,
    )


@OPTIMIZERS.register("adam")
def adam(params: Iterable[nn.Parameter], spec: OptimizerSpec) -> torch.optim.Optimizer:
    return torch.optim.Adam(params, lr=spec.lr, betas=spec.betas, weight_decay=spec.weight_decay)


@OPTIMIZERS.register("adamw")
def adamw(params: Iterable[nn.Parameter], spec: OptimizerSpec) -> torch.optim.Optimizer:
    return torch.optim.AdamW(params, lr=spec.lr, betas=spec.betas, weight_decay=spec.weight_decay)


# ----------------------------------------------------------------- schedules
# Schedules step once per optimizer step; ``total_steps``/``steps_per_epoch`` come from
# the data, so epochs in the spec mean the same whatever the batch size.
@SCHEDULERS.register("none")
def no_schedule(optimizer, spec: SchedulerSpec, total_steps: int, steps_per_epoch: int):
    return None


@SCHEDULERS.register("cosine")
def cosine(optimizer, spec: SchedulerSpec, total_steps: int, steps_per_epoch: int):
    """Linear warm-up for ``warmup_epochs``, then cosine decay to ``min_lr``."""
    warmup = spec.warmup_epochs * steps_per_epoch
    base = optimizer.param_groups[0]["lr"]
    floor = spec.min_lr / base

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


@SCHEDULERS.register("step")
def step(optimizer, spec: SchedulerSpec, total_steps: int, steps_per_epoch: int):
    """Multiply the LR by ``gamma`` every ``step_size`` epochs."""
    return torch.optim.lr_scheduler.StepLR(
        optimizer, step_size=spec.step_size * steps_per_epoch, gamma=spec.gamma
    )


# --------------------------------------------------------------------- losses
@LOSSES.register("cross_entropy")
def cross_entropy(spec: LossSpec) -> nn.Module:
    return nn.CrossEntropyLoss(label_smoothing=spec.label_smoothing)


@LOSSES.register("mse")
def mse(spec: LossSpec) -> nn.Module:
    return nn.MSELoss()


@LOSSES.register("mae")
def mae(spec: LossSpec) -> nn.Module:
    return nn.L1Loss()


@LOSSES.register("huber")
def huber(spec: LossSpec) -> nn.Module:
    return nn.HuberLoss(delta=spec.delta)


def default_loss(task: str) -> str:
    return "cross_entropy" if task == "classification" else "mse"
