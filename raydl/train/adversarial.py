"""Adversarial training (Goodfellow et al., 2015): a share of each train batch replaced
by its FGSM examples, ``x + ε · sign(∇ₓ loss(model(x), y))``, crafted against the model
as it is at that step.

The examples are crafted through the unwrapped module (no DDP hooks fire: only the
input's gradient is taken, no parameter's) in eval mode (batch norm's running
statistics are not moved by the attack's forward pass, dropout draws nothing), with the
run's own loss on the batch's targets (soft ones after mixup). The rows replaced are
the first ``round(share · B)`` of the (already shuffled) batch, so the same seed gives
the same batches. ε is in the model input's scaled units, as ``compress.robustness``
measures it; the perturbed input is not clipped to a pixel range.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn as nn

Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def gradient_sign(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss_fn: Loss) -> torch.Tensor:
    """sign(d loss_fn(model(x), y) / d x) for ``x`` (B, ...), as float32; no parameter's
    gradient is computed or touched."""
    first = next(model.parameters())
    x = x.detach().to(first.dtype).requires_grad_(True)
    loss = loss_fn(model(x).float(), y)
    (grad,) = torch.autograd.grad(loss, x)
    return grad.sign().float()


def fgsm(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    epsilon: float,
    loss_fn: Loss,
) -> torch.Tensor:
    """Fast gradient sign: ``x + epsilon * sign(grad)``, one step, in ``x``'s dtype."""
    return (x.float() + epsilon * gradient_sign(model, x, y, loss_fn)).to(x.dtype)


class AdversarialBatches:
    """Replaces the first ``round(share · B)`` rows of a train batch by their FGSM
    examples against ``module`` (the model the strategy wraps)."""

    def __init__(self, module: nn.Module, loss_fn: Loss, epsilon: float, share: float) -> None:
        self.module, self.loss_fn, self.epsilon, self.share = module, loss_fn, epsilon, share

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        k = round(self.share * len(x))
        if k == 0:  # a share that rounds to no row of this (short, last) batch
            return x
        was = self.module.training
        self.module.eval()
        try:
            with torch.enable_grad():
                crafted = fgsm(self.module, x[:k], y[:k], self.epsilon, self.loss_fn)
        finally:
            self.module.train(was)
        return torch.cat([crafted.detach(), x[k:]])
