"""Quantized and half-precision candidates of a torch model. The architecture change is
:func:`raydl.backends.apply_recipe` (the loader applies the same one), so a candidate is
measured as exactly the modules it is served as."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch.nn as nn

from raydl.backends import TorchBackend, apply_recipe
from raydl.compress.candidates import Candidate, torch_saver

HALF = {"fp16": "float16", "bf16": "bfloat16"}


def dynamic_int8(model: nn.Module, config: dict[str, Any], task: str) -> Candidate:
    """Linear/LSTM/GRU weights in int8, activations quantized per batch at run time."""
    recipe = {"quantize": "dynamic_int8"}
    q = apply_recipe(copy.deepcopy(model), recipe)
    return Candidate(
        "dynamic_int8",
        "torch-int8",
        TorchBackend(q, task),
        _params(model),
        torch_saver(q, config, "torch-int8"),
        recipe,
    )


def static_int8(model: nn.Module, config: dict[str, Any], task: str, calibration: np.ndarray) -> Candidate:
    """Conv/Linear weights and the activations between them in int8 (a CNN, FX graph
    mode), activation scales calibrated on ``calibration`` (preprocessed train rows)."""
    recipe = {"quantize": "static_int8"}
    q = apply_recipe(copy.deepcopy(model), recipe, calibration=calibration)
    return Candidate(
        "static_int8",
        "torch-int8",
        TorchBackend(q, task, {"config": config, "recipe": recipe}),
        _params(model),
        torch_saver(q, config, "torch-int8"),
        recipe,
        {"calibration_rows": len(calibration)},
    )


def half(model: nn.Module, config: dict[str, Any], task: str, technique: str) -> Candidate:
    """fp16 or bf16 weights (and compute: the backend casts the input to match)."""
    recipe = {"dtype": HALF[technique]}
    h = apply_recipe(copy.deepcopy(model), recipe)
    return Candidate(
        technique, "torch", TorchBackend(h, task), _params(model), torch_saver(h, config, "torch"), recipe
    )


def _params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
