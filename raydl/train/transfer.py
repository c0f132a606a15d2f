"""Transfer learning: pretrained weights from a local path, frozen layers, and a staged
unfreeze (``model.pretrained: {path, freeze, unfreeze_at}``).

- ``path`` goes to a builder that takes ``pretrained_path`` (e.g. ``hf_encoder``, which
  loads a Hugging Face folder); for any other model it is a weights file (safetensors or a
  torch state dict, or a raydl checkpoint folder) loaded by name, shapes that differ (a
  new head) left as built.
- ``freeze``: glob patterns over parameter names (``encoder.*``, ``0.weight``); each must
  match something. Frozen parameters get no gradient, so the optimizer leaves them
  bit-identical.
- ``unfreeze_at: E``: from epoch ``E`` (1-based) on, everything trains.
"""

from __future__ import annotations

import fnmatch
import inspect
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from raydl.errors import RaydlError
from raydl.spec import ModelSpec


def builder_params(model: ModelSpec) -> dict[str, Any]:
    """``model.params`` plus ``pretrained_path`` for a builder that loads its own weights."""
    from raydl.models import MODELS

    params = dict(model.params)
    if model.pretrained.path and "pretrained_path" in inspect.signature(MODELS.get(model.arch)).parameters:
        params.setdefault("pretrained_path", model.pretrained.path)
    return params


def load_weights(model: nn.Module, spec: ModelSpec) -> list[str]:
    """Load ``model.pretrained.path`` into a model whose builder did not; returns the names
    loaded. A no-op when there is no path or the builder took it."""
    path = spec.pretrained.path
    if not path or "pretrained_path" in builder_params(spec):
        return []
    from safetensors.torch import load_file

    p = Path(path)
    if p.is_dir():
        p = p / "model.safetensors"
    if not p.is_file():
        raise RaydlError(f"model.pretrained.path: no weights file at {p}")
    state = load_file(str(p)) if p.suffix == ".safetensors" else torch.load(p, weights_only=True)
    own = model.state_dict()
    fits = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    if not fits:
        raise RaydlError(f"model.pretrained.path: no tensor of {p} matches the model's names and shapes")
    model.load_state_dict(fits, strict=False)
    return sorted(fits)


def freeze(model: nn.Module, patterns: list[str]) -> list[str]:
    """Stop gradients of the parameters matching any glob of ``patterns``; the names frozen.

    Raises:
        RaydlError: a pattern matches no parameter (a typo would silently train everything).
    """
    names = [n for n, _ in model.named_parameters()]
    problems = [
        f"model.pretrained.freeze[{i}]: {pat!r} matches no parameter (names look like {names[0]!r})"
        for i, pat in enumerate(patterns)
        if not fnmatch.filter(names, pat)
    ]
    if problems:
        raise RaydlError("\n".join(problems))
    frozen = []
    for name, param in model.named_parameters():
        if any(fnmatch.fnmatchcase(name, pat) for pat in patterns):
            param.requires_grad_(False)
            frozen.append(name)
    return frozen


def unfreeze_now(spec: ModelSpec, epoch: int, first: int) -> bool:
    """Whether 0-based ``epoch`` is where the staged schedule unfreezes everything (or,
    resuming at ``first`` past that epoch, where it must be unfrozen again)."""
    at = spec.pretrained.unfreeze_at
    if not spec.pretrained.freeze or at is None:
        return False
    return epoch + 1 == at or (epoch == first and epoch + 1 > at)


def unfreeze(model: nn.Module) -> None:
    for param in model.parameters():
        param.requires_grad_(True)
