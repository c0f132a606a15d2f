"""A model that crashes its own training on purpose, for the fault tests: a real exception
raised in the trial, or the trial's process killed with SIGKILL. Built as user code
(``model.arch: tests.reliability.faulty:mlp``) so a search's space can pick the fault."""

import os
import signal
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn


class FaultyMLP(nn.Module):
    """A one-hidden-layer MLP. ``crash``: ``none``; ``always``: every training step raises;
    ``once``: the first training step after the first validation (epoch 2's first step,
    after epoch 1's checkpoint) kills this process with SIGKILL, once per ``marker`` file."""

    def __init__(self, features: int, num_outputs: int, hidden: int, crash: str, marker: str):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(features, hidden), nn.ReLU(), nn.Linear(hidden, num_outputs))
        self.crash, self.marker, self.validated = crash, marker, False

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, F) -> (B, C)
        if not self.training:
            self.validated = True
        elif self.crash == "always":
            raise RuntimeError("injected fault: this trial's model raises at every training step")
        elif self.crash == "once" and self.validated and not Path(self.marker).exists():
            Path(self.marker).write_text(str(os.getpid()))
            os.kill(os.getpid(), signal.SIGKILL)
        return self.net(x.flatten(1))


def mlp(input_shape, num_outputs: int, hidden: int = 16, crash: str = "none", marker: str = "") -> nn.Module:
    features = 1
    for d in input_shape:
        features *= int(d)
    return FaultyMLP(features, num_outputs, hidden, crash, marker)


def search_spec(marker) -> Any:
    """Iris, two trials of 2 epochs, `tune.max_failures: 1`: one trial's process is killed
    at epoch 2's first step (once: ``marker`` then exists), the other raises every step."""
    from raydl.spec import validate_spec

    return validate_spec(
        {
            "name": "iris-faulty-search",
            "seed": 0,
            "data": {"source": {"type": "builtin", "name": "iris"}, "label": "target"},
            "model": {"arch": "tests.reliability.faulty:mlp", "params": {"marker": str(marker)}},
            "train": {"workers": 1, "epochs": 2, "batch_size": 16, "checkpoint": {"metric": "val_accuracy"}},
            "tune": {
                "search": "grid",
                "metric": "val_accuracy",
                "mode": "max",
                "max_failures": 1,
                "space": {"model.params.crash": {"grid": ["once", "always"]}},
            },
        }
    )
