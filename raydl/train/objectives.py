"""What a training step minimises, by kind of model and task.

- supervised (classification, regression): ``loss_fn(model(x), y)``;
- ``language_modeling``: next-token cross-entropy of a causal LM's logits ``(B, T, V)``
  against ``x`` shifted by one, padding ignored; its metric is perplexity = exp(loss);
- a model with its own ``objective(x, out)`` (the VAE): that, whatever the task;
- a student being distilled: ``loss_fn(model(x), y, x)`` (:mod:`raydl.train.distill`).

:func:`forward_loss` returns the output to score (``None`` when there is no label to
score against) and the loss.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import torch
import torch.nn as nn
import torch.nn.functional as F


@runtime_checkable
class Generative(Protocol):
    """A model that scores itself: ``objective(x, out)`` is its loss (the VAE's ELBO)."""

    def objective(self, x: torch.Tensor, out: Any) -> torch.Tensor: ...


@runtime_checkable
class RowScoring(Protocol):
    """A model that scores each row itself: ``row_scores(x, out)`` maps a score's name to
    its (B,) values (the VAE: ``loss``, its negative ELBO, and ``reconstruction_error``)."""

    def row_scores(self, x: torch.Tensor, out: Any) -> dict[str, torch.Tensor]: ...


def _unwrap(model: nn.Module) -> nn.Module:
    return getattr(model, "module", model)  # DDP keeps the user's model in .module


def next_token_loss(logits: torch.Tensor, tokens: torch.Tensor, pad_id: int | None) -> torch.Tensor:
    """Mean cross-entropy of ``logits[:, t]`` predicting ``tokens[:, t + 1]``."""
    pred = logits[:, :-1].reshape(-1, logits.shape[-1]).float()  # (B·(T-1), V)
    target = tokens[:, 1:].reshape(-1).long()  # (B·(T-1),)
    return F.cross_entropy(pred, target, ignore_index=-100 if pad_id is None else pad_id)


def forward_loss(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor | None, loss_fn: Callable, task: str
) -> tuple[torch.Tensor | None, torch.Tensor]:
    """One forward pass: ``(output to score or None, loss)``."""
    inner = _unwrap(model)
    out = model(x)
    if isinstance(inner, Generative):  # generative model with its own loss (VAE)
        return None, inner.objective(x, out)
    if task == "language_modeling":
        return None, next_token_loss(out, x, getattr(inner, "pad_id", None))
    if task == "regression":
        out = out.squeeze(-1)  # (B, 1) → (B,)
    if getattr(loss_fn, "takes_input", False):  # distillation: the teacher reads x too
        return out, loss_fn(out.float(), y, x)
    return out, loss_fn(out.float(), y)


def extra_metrics(prefix: str, mean_loss: float, task: str) -> dict[str, float]:
    """Metrics derived from the mean loss: perplexity for language modeling."""
    if task == "language_modeling":
        return {f"{prefix}_perplexity": math.exp(min(mean_loss, 700.0))}
    return {}


def has_own_objective(model: nn.Module) -> bool:
    """A model trained on its own objective (the VAE): no labels to score on test."""
    return isinstance(_unwrap(model), Generative)


@torch.no_grad()
def test_language_model(model: nn.Module, dataset, batch_size: int = 256) -> dict[str, float]:
    """A causal LM on a test dataset of ``{"x"}`` token-id rows: the mean next-token
    cross-entropy over every predicted (non-pad) token, ``test_loss``, and its
    ``perplexity`` = exp(test_loss); ``n`` rows, ``tokens`` predicted."""
    model.eval()
    pad_id = getattr(_unwrap(model), "pad_id", None)
    total, tokens, rows = 0.0, 0, 0
    for batch in dataset.iter_torch_batches(batch_size=batch_size):
        x = batch["x"].long()
        logits = model(x)
        target = x[:, 1:].reshape(-1)
        pred = logits[:, :-1].reshape(-1, logits.shape[-1]).float()
        keep = target != pad_id if pad_id is not None else torch.ones_like(target, dtype=torch.bool)
        total += float(F.cross_entropy(pred[keep], target[keep], reduction="sum"))
        tokens += int(keep.sum())
        rows += len(x)
    loss = total / max(tokens, 1)
    return {"test_loss": loss, "perplexity": math.exp(min(loss, 700.0)), "n": rows, "tokens": tokens}


def row_next_token_loss(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A causal LM on token-id rows ``x`` (B, T): each row's mean next-token cross-entropy
    over its predicted (non-pad) tokens, and how many there were — (B,) each. Summing
    ``loss * tokens`` over rows and dividing by the tokens gives :func:`test_language_model`'s loss."""
    pad_id = getattr(_unwrap(model), "pad_id", None)
    x = x.long()
    logits = model(x)
    target = x[:, 1:]  # (B, T-1)
    nll = F.cross_entropy(logits[:, :-1].float().transpose(1, 2), target, reduction="none")  # (B, T-1)
    keep = target != pad_id if pad_id is not None else torch.ones_like(target, dtype=torch.bool)
    tokens = keep.sum(1)
    loss = (nll * keep).sum(1) / tokens.clamp(min=1)
    return loss, tokens


def row_objective(model: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """A model with its own objective, per row of ``x``: ``loss`` (its objective per
    example; for a VAE the negative ELBO) and what else it scores per row (a VAE:
    ``reconstruction_error``).

    Raises:
        TypeError: the model has neither ``row_scores`` nor ``objective``.
    """
    inner = _unwrap(model)
    if isinstance(inner, RowScoring):
        return inner.row_scores(x, model(x))
    if not isinstance(inner, Generative):
        raise TypeError(f"{type(inner).__name__} has no objective(x, out) to score")
    return {"loss": torch.stack([inner.objective(x[i : i + 1], model(x[i : i + 1])) for i in range(len(x))])}


@torch.no_grad()
def test_objective(model: nn.Module, dataset, batch_size: int = 1024) -> dict[str, float]:
    """The mean objective over a test dataset of ``{"x", ...}`` rows (for a VAE: the
    negative ELBO per example), as ``test_loss`` with the row count ``n``."""
    model.eval()
    inner = _unwrap(model)
    if not isinstance(inner, Generative):
        raise TypeError(f"{type(inner).__name__} has no objective(x, out) to score")
    total, rows = 0.0, 0
    for batch in dataset.iter_torch_batches(batch_size=batch_size):
        x = batch["x"]
        total += float(inner.objective(x, model(x))) * len(x)
        rows += len(x)
    return {"test_loss": total / max(rows, 1), "n": rows}
