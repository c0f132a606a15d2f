"""Pruned candidates: L1 unstructured (the smallest weights set to zero, made permanent:
the file stays as large, the zeros compress only in sparse formats) and structured
channel/neuron pruning with Torch-Pruning, dependency-aware, which really shrinks the
layers (fewer parameters, a smaller file, less compute).

A structurally pruned model is saved as its weights plus the recipe ``{"shapes": {name:
shape}}`` of every tensor whose shape changed; the loader rebuilds the architecture from
``model.json`` and resizes those tensors (:func:`raydl.backends.apply_recipe`) before
the weights load, so no pickled module and no pruning library is needed to serve it.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from raydl.backends import TorchBackend
from raydl.compress.candidates import Candidate, torch_saver
from raydl.errors import RaydlError

PRUNABLE = (nn.Linear, nn.Conv1d, nn.Conv2d)


def l1_unstructured(model: nn.Module, config: dict[str, Any], task: str, amount: float) -> Candidate:
    """``amount`` of each Linear/Conv weight (smallest |w|) set to zero for good."""
    from torch.nn.utils import prune

    pruned = copy.deepcopy(model)
    for module in pruned.modules():
        if isinstance(module, PRUNABLE):
            prune.l1_unstructured(module, "weight", amount=amount)
            prune.remove(module, "weight")  # the mask folded into the weight: permanent
    weights = [m.weight for m in pruned.modules() if isinstance(m, PRUNABLE)]
    zeros = sum(int((w == 0).sum()) for w in weights) / max(1, sum(w.numel() for w in weights))
    params = sum(p.numel() for p in pruned.parameters())
    return Candidate(
        "prune_l1",
        "torch",
        TorchBackend(pruned.eval(), task),
        params,
        torch_saver(pruned, config, "torch"),
        notes={"sparsity": zeros},
    )


def structured(
    model: nn.Module, config: dict[str, Any], task: str, amount: float, example: np.ndarray
) -> Candidate:
    """``amount`` of the channels/neurons of every prunable layer but the output layer
    removed by L1 group magnitude (Torch-Pruning's ``MetaPruner``: coupled layers —
    a conv, its batch norm, the next layer's inputs — are pruned together).

    Raises:
        RaydlError: torch-pruning is missing, or the model cannot be traced by it.
    """
    try:
        import torch_pruning as tp
    except ImportError:
        raise RaydlError(
            "compress: prune_structured needs the Python package 'torch-pruning' (pip install torch-pruning)"
        ) from None
    pruned = copy.deepcopy(model).eval()
    before = {k: tuple(v.shape) for k, v in pruned.state_dict().items()}
    head = [m for m in pruned.modules() if isinstance(m, PRUNABLE)][-1:]  # the outputs stay
    x = torch.from_numpy(np.ascontiguousarray(example[:2]))
    try:
        pruner = tp.pruner.MetaPruner(
            pruned,
            x,
            importance=tp.importance.GroupMagnitudeImportance(p=1),
            pruning_ratio=amount,
            ignored_layers=head,
        )
        pruner.step()
    except Exception as e:  # a model the tracer cannot follow: say which technique failed
        raise RaydlError(
            f"compress: prune_structured could not prune this model ({type(e).__name__}: {e})"
        ) from e
    shapes = {k: list(v.shape) for k, v in pruned.state_dict().items() if tuple(v.shape) != before.get(k)}
    params = sum(p.numel() for p in pruned.parameters())
    return Candidate(
        "prune_structured",
        "torch",
        TorchBackend(pruned.eval(), task),
        params,
        torch_saver(pruned, config, "torch"),
        recipe={"shapes": shapes},
        notes={"params_before": sum(p.numel() for p in model.parameters())},
    )
