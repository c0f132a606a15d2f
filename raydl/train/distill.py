"""Knowledge distillation's loss: a student learns from a trained teacher's softened
class probabilities as well as from the labels (Hinton et al., 2015).

    loss = α · T² · KL(softmax(teacher / T) ‖ softmax(student / T)) + (1 − α) · hard(student, y)

``hard`` is the run's own loss (``train.loss``: cross-entropy, with its label smoothing
and class weights). T² keeps the soft term's gradients the size of the hard term's as T
grows (they shrink as 1/T²). The teacher is loaded inside each worker from the run's best
checkpoint (a path), frozen and in eval mode, and sees the same (augmented) batch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from raydl.train.checkpoint import load_model_dir


def soft_loss(student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    """T² · KL(softmax(teacher / T) ‖ softmax(student / T)), the mean over the batch;
    logits (B, classes) each."""
    t = temperature
    log_p_student = F.log_softmax(student.float() / t, dim=-1)
    log_p_teacher = F.log_softmax(teacher.float() / t, dim=-1)
    kl = F.kl_div(log_p_student, log_p_teacher, reduction="batchmean", log_target=True)
    return kl * t * t


def distill_loss(
    student: torch.Tensor,
    teacher: torch.Tensor,
    y: torch.Tensor,
    hard: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    temperature: float,
    alpha: float,
) -> torch.Tensor:
    """α · :func:`soft_loss` + (1 − α) · ``hard(student, y)``; ``alpha`` 0 is ``hard`` alone."""
    if alpha == 0:
        return hard(student, y)
    return alpha * soft_loss(student, teacher, temperature) + (1 - alpha) * hard(student, y)


class DistillLoss(nn.Module):
    """The training loop's loss for a student: called ``(student_logits, y, x)``
    (:func:`raydl.train.objectives.forward_loss` passes ``x`` to a loss that
    ``takes_input``); the teacher runs on ``x`` without gradients."""

    takes_input = True

    def __init__(self, teacher: nn.Module, hard: nn.Module, temperature: float, alpha: float) -> None:
        super().__init__()
        self.teacher = teacher.eval().requires_grad_(False)
        self.hard, self.temperature, self.alpha = hard, temperature, alpha

    def train(self, mode: bool = True) -> DistillLoss:
        super().train(mode)
        self.teacher.eval()  # the teacher's batch norm and dropout stay as trained
        return self

    def forward(self, student: torch.Tensor, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            teacher = self.teacher(x)  # (B, classes)
        return distill_loss(student, teacher, y, self.hard, self.temperature, self.alpha)


def teacher_loss(config: dict[str, Any], hard: nn.Module, device: torch.device) -> DistillLoss:
    """The :class:`DistillLoss` of the loop's ``config["distill"]`` (``teacher``: a model
    folder; ``temperature``, ``alpha``), the teacher on ``device``. Building the teacher
    draws no random numbers from the student's stream (its init is overwritten anyway),
    so a student distilled and the same student alone see the same draws."""
    with torch.random.fork_rng(devices=[]):
        teacher = load_model_dir(config["teacher"])
    return DistillLoss(teacher.to(device), hard, config["temperature"], config["alpha"]).to(device)
