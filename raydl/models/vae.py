"""A variational autoencoder: its own loss (reconstruction + KL) and sampling.

Training calls :meth:`VAE.objective` instead of the spec's loss (see
:mod:`raydl.train.objectives`); :func:`sample` draws new inputs from a trained model.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from raydl.models import MODELS


class VAEOutput(NamedTuple):
    recon: torch.Tensor  # (B, *input_shape): the decoder's mean (logits for recon: bce)
    mu: torch.Tensor  # (B, latent)
    logvar: torch.Tensor  # (B, latent)


class VAE(nn.Module):
    def __init__(self, input_shape, latent: int, hidden: list[int], recon: str, beta: float) -> None:
        super().__init__()
        if recon not in ("mse", "bce"):
            raise ValueError(f"recon must be 'mse' or 'bce', got {recon!r}")
        self.input_shape, self.latent, self.recon, self.beta = tuple(input_shape), latent, recon, beta
        width = math.prod(input_shape)
        enc: list[nn.Module] = [nn.Flatten()]
        w = width
        for h in hidden:
            enc += [nn.Linear(w, h), nn.ReLU()]
            w = h
        self.encoder = nn.Sequential(*enc)
        self.to_stats = nn.Linear(w, 2 * latent)
        dec: list[nn.Module] = []
        w = latent
        for h in reversed(hidden):
            dec += [nn.Linear(w, h), nn.ReLU()]
            w = h
        dec.append(nn.Linear(w, width))
        self.decoder = nn.Sequential(*dec)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        out = self.decoder(z).reshape(len(z), *self.input_shape)
        return out

    def forward(self, x: torch.Tensor) -> VAEOutput:
        mu, logvar = self.to_stats(self.encoder(x.float())).chunk(2, dim=-1)
        # reparameterisation: sample in training, the mean in eval (deterministic recon)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp() if self.training else mu
        return VAEOutput(self.decode(z), mu, logvar)

    def objective(self, x: torch.Tensor, out: VAEOutput) -> torch.Tensor:
        """The negative ELBO per example: reconstruction (summed over the input) + β·KL."""
        x = x.float()
        if self.recon == "bce":
            rec = F.binary_cross_entropy_with_logits(out.recon, x, reduction="sum")
        else:
            rec = F.mse_loss(out.recon, x, reduction="sum")
        kl = -0.5 * torch.sum(1 + out.logvar - out.mu**2 - out.logvar.exp())
        return (rec + self.beta * kl) / len(x)

    def row_scores(self, x: torch.Tensor, out: VAEOutput) -> dict[str, torch.Tensor]:
        """Per example: ``loss`` (the negative ELBO, :meth:`objective` before its mean) and
        ``reconstruction_error`` (its reconstruction term) — (B,) each."""
        x = x.float()
        if self.recon == "bce":
            rec = F.binary_cross_entropy_with_logits(out.recon, x, reduction="none")
        else:
            rec = F.mse_loss(out.recon, x, reduction="none")
        rec = rec.reshape(len(x), -1).sum(1)
        kl = -0.5 * torch.sum(1 + out.logvar - out.mu**2 - out.logvar.exp(), dim=-1)
        return {"loss": rec + self.beta * kl, "reconstruction_error": rec}

    @torch.no_grad()
    def sample(self, n: int, seed: int | None = None) -> torch.Tensor:
        """``n`` new inputs ``(n, *input_shape)`` decoded from the prior N(0, I)."""
        gen = torch.Generator().manual_seed(seed) if seed is not None else None
        device = next(self.parameters()).device
        z = torch.randn(n, self.latent, generator=gen).to(device)
        out = self.decode(z)
        return torch.sigmoid(out) if self.recon == "bce" else out


@MODELS.register("vae")
def vae(
    input_shape: tuple[int, ...],
    num_outputs: int,
    latent: int = 16,
    hidden: Sequence[int] = (256, 128),
    recon: str = "mse",
    beta: float = 1.0,
) -> nn.Module:
    """MLP encoder → (μ, log σ²) → z → MLP decoder to the input's shape. ``recon: mse``
    suits standardised inputs, ``bce`` inputs in [0, 1]. ``num_outputs`` is unused."""
    del num_outputs
    return VAE(input_shape, latent, list(hidden), recon, beta)


def sample(model: nn.Module, n: int, seed: int | None = None) -> torch.Tensor:
    """Draw ``n`` examples from a trained VAE (e.g. ``raydl.load_model(run_dir)``)."""
    model = getattr(model, "module", model)
    if not isinstance(model, VAE):
        raise TypeError(f"sampling needs a VAE, got {type(model).__name__}")
    model.eval()
    return model.sample(n, seed)
