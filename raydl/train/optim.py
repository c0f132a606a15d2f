"""Optimizers, LR schedules and losses, each family in its registry (the names are
declared in :mod:`raydl.catalog`; this module registers the builders).

Builders take the validated spec section, so a new entry needs no change elsewhere.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Iterable

import torch
import torch.nn as nn
import torch.nn.functional as F

from raydl.catalog import LOSSES, OPTIMIZERS, SCHEDULERS, metric_mode
from raydl.errors import RaydlError
from raydl.spec import LossSpec, OptimizerSpec, SchedulerSpec

__all__ = ["LOSSES", "OPTIMIZERS", "SCHEDULERS", "build_loss", "default_loss", "epoch_end", "steps_per_batch"]


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


@OPTIMIZERS.register("rmsprop")
def rmsprop(params: Iterable[nn.Parameter], spec: OptimizerSpec) -> torch.optim.Optimizer:
    return torch.optim.RMSprop(
        params, lr=spec.lr, alpha=spec.alpha, momentum=spec.momentum, weight_decay=spec.weight_decay
    )


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


@SCHEDULERS.register("one_cycle")
def one_cycle(optimizer, spec: SchedulerSpec, total_steps: int, steps_per_epoch: int):
    """Rise to ``train.optimizer.lr`` over ``pct_start`` of the steps, then anneal (cosine)."""
    return torch.optim.lr_scheduler.OneCycleLR(
        optimizer,
        max_lr=optimizer.param_groups[0]["lr"],
        total_steps=max(1, total_steps),
        pct_start=spec.pct_start,
    )


@SCHEDULERS.register("plateau")
def plateau(optimizer, spec: SchedulerSpec, total_steps: int, steps_per_epoch: int):
    """Multiply the LR by ``gamma`` once ``metric`` stalls for ``patience`` epochs; stepped
    once per epoch with that metric (:func:`epoch_end`), not per batch."""
    return torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer,
        mode=metric_mode(spec.metric, spec.mode),
        factor=spec.gamma,
        patience=spec.patience,
        min_lr=spec.min_lr,
    )


def steps_per_batch(scheduler) -> bool:
    """Whether ``scheduler`` steps after every optimizer step (all but plateau)."""
    return scheduler is not None and not isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau)


def epoch_end(scheduler, metrics: dict[str, float], spec: SchedulerSpec) -> None:
    """The per-epoch step of a plateau schedule, with the watched metric."""
    if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
        scheduler.step(metrics[spec.metric])


# --------------------------------------------------------------------- losses
class SoftCrossEntropy(nn.Module):
    """Cross-entropy that takes class ids ``(B,)`` or soft targets ``(B, C)`` (mixup), with
    optional per-class weights and label smoothing (torch's own loss does all three)."""

    weight: torch.Tensor | None  # a buffer: moves with the module to its device

    def __init__(self, weight: list[float] | None, label_smoothing: float) -> None:
        super().__init__()
        self.register_buffer("weight", torch.tensor(weight, dtype=torch.float32) if weight else None)
        self.label_smoothing = label_smoothing

    def forward(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if y.is_floating_point() and y.dim() == 1:
            y = y.long()
        return F.cross_entropy(out, y, weight=self.weight, label_smoothing=self.label_smoothing)


@LOSSES.register("cross_entropy")
def cross_entropy(spec: LossSpec, class_weights: list[float] | None = None) -> nn.Module:
    return SoftCrossEntropy(spec.class_weights or class_weights, spec.label_smoothing)


def _probabilities(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Targets as a float tensor shaped like ``out``: one-hot for class ids."""
    if y.dim() == out.dim():
        return y.float()
    if out.dim() == 2 and out.shape[1] > 1:
        return F.one_hot(y.long(), out.shape[1]).float()
    return y.float().reshape(out.shape)


class FocalLoss(nn.Module):
    """Multi-class focal loss (Lin et al. 2017): ``-Σ_c w_c t_c (1 - p_c)^γ log p_c``,
    averaged over the batch; γ = 0 is (weighted) cross-entropy."""

    weight: torch.Tensor | None  # a buffer: moves with the module to its device

    def __init__(self, gamma: float, weight: list[float] | None) -> None:
        super().__init__()
        self.gamma = gamma
        self.register_buffer("weight", torch.tensor(weight, dtype=torch.float32) if weight else None)

    def forward(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        logp = F.log_softmax(out, dim=-1)  # (B, C)
        t = _probabilities(out, y)
        terms = -t * (1 - logp.exp()) ** self.gamma * logp
        if self.weight is not None:
            terms = terms * self.weight
        return terms.sum(-1).mean()


@LOSSES.register("focal")
def focal(spec: LossSpec, class_weights: list[float] | None = None) -> nn.Module:
    return FocalLoss(spec.gamma, spec.class_weights or class_weights)


class BinaryCrossEntropy(nn.Module):
    """BCE on logits; class ids against C columns become one-hot (one sigmoid per class)."""

    def forward(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(out, _probabilities(out, y))


@LOSSES.register("bce")
def bce(spec: LossSpec) -> nn.Module:
    return BinaryCrossEntropy()


class WeightedSum(nn.Module):
    """``Σ weight_i · loss_i``: term i scores head i when the model returns a tuple/list of
    outputs (and a tuple of targets, else the one target), otherwise the one output."""

    def __init__(self, terms: list[nn.Module], weights: list[float]) -> None:
        super().__init__()
        self.terms, self.weights = nn.ModuleList(terms), weights

    def forward(self, out, y):
        total = 0.0
        for i, (term, w) in enumerate(zip(self.terms, self.weights, strict=True)):
            o = out[i] if isinstance(out, (tuple, list)) else out
            t = y[i] if isinstance(y, (tuple, list)) else y
            total = total + w * term(o.float(), t)
        return total


@LOSSES.register("weighted_sum")
def weighted_sum(spec: LossSpec, class_weights: list[float] | None = None) -> nn.Module:
    if not spec.terms:
        raise RaydlError("train.loss.terms: weighted_sum needs at least one term")
    return WeightedSum([build_loss(t, "", class_weights) for t in spec.terms], [t.weight for t in spec.terms])


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


def build_loss(spec: LossSpec, task: str, class_weights: list[float] | None = None) -> nn.Module:
    """The loss of ``spec`` (or the task's default); ``class_weights`` from the data reach
    a builder that takes them, unless the spec gives its own."""
    builder = LOSSES.get(spec.type or default_loss(task))
    if class_weights is not None and "class_weights" in inspect.signature(builder).parameters:
        return builder(spec, class_weights=class_weights)
    return builder(spec)
