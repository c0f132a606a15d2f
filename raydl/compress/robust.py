"""Adversarial robustness columns: accuracy under FGSM and PGD (L-inf, at the spec's
epsilon, in the model input's scaled units) on a sample of the test split.

A candidate that is a differentiable torch model (fp32, fp16/bf16, pruned) is attacked
through its own gradients (white-box). Int8 and ONNX candidates have no usable gradient:
they are scored on the adversarial rows crafted against the original fp32 model (a
transfer attack), which says how much of the original's weakness they inherit, not how
weak they are themselves. The perturbed input is not clipped to a pixel range: the
scaled units have none the stage knows of.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from raydl.compress.candidates import Candidate
from raydl.spec.compress import RobustnessSpec
from raydl.train import adversarial

WHITE_BOX, TRANSFER = "white-box", "transfer"


def _gradient_sign(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """sign(d loss / d x) of the cross-entropy on ``x`` (B, ...), in the model's dtype."""
    return adversarial.gradient_sign(model, x, y, F.cross_entropy)


def fgsm(model: torch.nn.Module, x: np.ndarray, y: np.ndarray, epsilon: float) -> np.ndarray:
    """Fast gradient sign: ``x + epsilon * sign(grad)``, one step."""
    t, labels = torch.from_numpy(x).float(), torch.from_numpy(y).long()
    return adversarial.fgsm(model, t, labels, epsilon, F.cross_entropy).numpy()


def pgd(
    model: torch.nn.Module, x: np.ndarray, y: np.ndarray, epsilon: float, steps: int, step_size: float
) -> np.ndarray:
    """Projected gradient descent: ``steps`` gradient-sign steps of ``step_size`` from the
    clean rows (no random start: the same rows every time), each projected back into the
    epsilon ball around them."""
    clean, labels = torch.from_numpy(x).float(), torch.from_numpy(y).long()
    adv = clean.clone()
    for _ in range(steps):
        adv = adv + step_size * _gradient_sign(model, adv, labels)
        adv = torch.max(torch.min(adv, clean + epsilon), clean - epsilon)
    return adv.numpy()


def differentiable(candidate: Candidate) -> bool:
    """A torch model with floating-point weights (not int8, not ONNX)."""
    model = getattr(candidate.backend, "model", None)
    if candidate.fmt != "torch" or not isinstance(model, torch.nn.Module):
        return False
    first = next(iter(model.parameters()), None)
    return first is not None and first.is_floating_point()


def attacks(
    model: torch.nn.Module, x: np.ndarray, y: np.ndarray, spec: RobustnessSpec
) -> dict[str, np.ndarray]:
    """The FGSM and PGD rows against ``model`` (white-box), ``{"fgsm", "pgd"}``."""
    step = spec.pgd_step_size or 2.5 * spec.epsilon / spec.pgd_steps
    was = model.training
    model.eval()
    try:
        with torch.enable_grad():
            return {
                "fgsm": fgsm(model, x, y, spec.epsilon),
                "pgd": pgd(model, x, y, spec.epsilon, spec.pgd_steps, step),
            }
    finally:
        model.train(was)


def accuracy(candidate: Candidate, x: np.ndarray, y: np.ndarray) -> float:
    """Share of rows whose arg-max logit is the label, through the candidate's backend."""
    logits = candidate.backend(np.ascontiguousarray(x, dtype=np.float32))["logits"]
    return float(np.mean(np.argmax(logits, axis=1) == y))


def robustness_row(
    candidate: Candidate,
    x: np.ndarray,
    y: np.ndarray,
    spec: RobustnessSpec,
    transfer: dict[str, np.ndarray],
    original: bool = False,
) -> dict[str, Any]:
    """``fgsm_accuracy``, ``pgd_accuracy`` and ``attack`` (white-box, or transfer: scored on
    ``transfer``, the rows crafted against the original) for the table. ``original``: the
    candidate is the one ``transfer`` was crafted against (its own white-box rows)."""
    if original:
        adversarial, attack = transfer, WHITE_BOX
    elif differentiable(candidate):
        adversarial, attack = attacks(candidate.backend.model, x, y, spec), WHITE_BOX  # type: ignore[attr-defined]
    else:
        adversarial, attack = transfer, TRANSFER
    return {
        "fgsm_accuracy": accuracy(candidate, adversarial["fgsm"], y),
        "pgd_accuracy": accuracy(candidate, adversarial["pgd"], y),
        "attack": attack,
    }
