"""The checkpoint format: plain files, loadable without Ray.

model.safetensors   the model's weights
model.json          how to rebuild it: {arch, params, input_shape, num_outputs}
train_state.pt      epoch, early-stopping state, optimizer/scheduler/scaler state (tensors and
                    plain values only: read back with ``torch.load(weights_only=True)``)
checksums.json      the sha256 of each file (:mod:`raydl.artifacts`), verified before loading

Each file is written under a temporary name and renamed into place.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
from safetensors.torch import load_file, save_file

from raydl import artifacts
from raydl.errors import RaydlError
from raydl.models import build_model

WEIGHTS, CONFIG, TRAIN_STATE = "model.safetensors", "model.json", "train_state.pt"


def unwrap(model: nn.Module) -> nn.Module:
    """The user's module inside a DDP wrapper."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def save(
    directory: str | Path,
    model: nn.Module,
    model_config: dict[str, Any],
    *,
    train_state: dict[str, Any] | None = None,
    optimizer=None,
    scheduler=None,
    scaler=None,
) -> None:
    full = None
    if train_state is not None:
        full = {
            **train_state,
            "optimizer": optimizer.state_dict() if optimizer else None,
            "scheduler": scheduler.state_dict() if scheduler else None,
            "scaler": scaler.state_dict() if scaler else None,
        }
    save_weights(directory, model.state_dict(), model_config, full)


def save_weights(
    directory: str | Path,
    weights: dict[str, torch.Tensor],
    model_config: dict[str, Any],
    train_state: dict[str, Any] | None = None,
) -> None:
    """The Ray-free part of a checkpoint: weights, model config, and the loop state."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    # safetensors refuses shared storage (views, or tied weights such as GPT-2's input
    # embedding and output head): each tensor is written as its own contiguous copy, and
    # loading fills a tied parameter twice with the same values
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in weights.items()}
    artifacts.write_with(d / WEIGHTS, lambda tmp: save_file(tensors, tmp))
    artifacts.write_text(d / CONFIG, json.dumps(model_config, indent=2))
    if train_state is not None:
        artifacts.write_with(d / TRAIN_STATE, lambda tmp: torch.save(dict(train_state), tmp))
    artifacts.seal(d)


def load_model_dir(
    directory: str | Path, device: str = "cpu", *, config: str = CONFIG, weights: str = WEIGHTS
) -> nn.Module:
    """Rebuild the model from a checkpoint directory (its ``config`` and ``weights``
    files), in eval mode."""
    d = Path(directory)
    artifacts.verify(d)
    model = build_from_config(json.loads((d / config).read_text()))
    model.load_state_dict(load_file(str(d / weights), device=device))
    return model.to(device).eval()


def build_from_config(cfg: dict[str, Any]) -> nn.Module:
    """The untrained architecture a ``model.json`` describes."""
    return build_model(
        cfg["arch"], tuple(cfg["input_shape"]), cfg["num_outputs"], cfg["params"], cfg.get("data_info")
    )


def load_train_state(directory: str | Path, model: nn.Module, optimizer, scheduler, scaler) -> dict[str, Any]:
    """Restore weights and optimizer/scheduler/scaler state; return the loop state."""
    d = Path(directory)
    artifacts.verify(d)
    model.load_state_dict(load_file(str(d / WEIGHTS)))
    state = read_train_state(d)
    if optimizer is not None and state.get("optimizer"):
        optimizer.load_state_dict(state["optimizer"])
    if scheduler is not None and state.get("scheduler"):
        scheduler.load_state_dict(state["scheduler"])
    if scaler is not None and state.get("scaler"):
        scaler.load_state_dict(state["scaler"])
    return {k: state[k] for k in ("epoch", "best", "stale")}


def read_train_state(directory: str | Path) -> dict[str, Any]:
    """A checkpoint's loop state, unpickled with ``weights_only=True``: tensors, numbers,
    strings and containers of them; anything else (an object whose unpickling runs code)
    is refused unread.

    Raises:
        RaydlError: the file holds more than a state.
    """
    import pickle

    path = Path(directory) / TRAIN_STATE
    try:
        return dict(torch.load(path, weights_only=True, map_location="cpu"))
    except pickle.UnpicklingError as e:
        first = str(e).strip().splitlines()[0]
        raise RaydlError(f"{path}: not a plain training state, refused unread ({first})") from None
