"""A model that crashes its own training on purpose, for the fault tests: a real exception
raised in the trial, or the trial's process killed with SIGKILL. Built as user code
(``model.arch: tests.reliability.faulty:mlp``) so a search's space can pick the fault."""

import os
import signal
from pathlib import Path

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
