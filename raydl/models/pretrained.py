"""A pretrained Hugging Face encoder (e.g. the local all-MiniLM-L6-v2) with a new
classification head: masked mean pooling of the last hidden states → Dropout → Linear.

Weights come from ``pretrained_path`` (``model.pretrained.path``), a folder or a
``module:function`` returning one, loaded offline (``local_files_only``). Parameter names
are ``encoder.*`` and ``head.*``, which ``model.pretrained.freeze`` patterns address.
"""

from __future__ import annotations

import importlib
import logging
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.nn as nn

from raydl.models import MODELS

if TYPE_CHECKING:
    from transformers import PreTrainedModel


def resolve_path(path: str) -> Path:
    """A local folder: ``path`` itself, or what ``module:function`` returns."""
    if ":" in path and not Path(path).exists():
        module, _, name = path.partition(":")
        try:
            return Path(getattr(importlib.import_module(module), name)())
        except (ImportError, AttributeError, TypeError) as e:
            raise ValueError(f"cannot call {path!r}: {e}") from e
    if not Path(path).exists():
        raise ValueError(f"no pretrained weights at {path}")
    return Path(path)


class EncoderClassifier(nn.Module):
    def __init__(self, encoder: PreTrainedModel, num_outputs: int, pad_id: int, dropout: float) -> None:
        super().__init__()
        self.encoder, self.pad_id = encoder, pad_id
        hidden = int(encoder.config.hidden_size)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(hidden, num_outputs))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.long()
        mask = (x != self.pad_id).long()  # (B, T)
        hidden = self.encoder(input_ids=x, attention_mask=mask).last_hidden_state  # (B, T, H)
        m = mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * m).sum(1) / m.sum(1).clamp(min=1.0)  # masked mean, as sentence-transformers
        return self.head(pooled)


@MODELS.register("hf_encoder")
def hf_encoder(
    input_shape: tuple[int, ...],
    num_outputs: int,
    pretrained_path: str | None = None,
    pad_id: int = 0,
    max_length: int | None = None,
    dropout: float = 0.1,
) -> nn.Module:
    """The encoder at ``pretrained_path`` (set by ``model.pretrained.path``) with a new head."""
    from transformers import AutoModel

    del max_length
    if not pretrained_path:
        raise ValueError("hf_encoder needs model.pretrained.path (a local Hugging Face model folder)")
    if len(input_shape) != 1:
        raise ValueError(f"hf_encoder needs token ids (text data), got input shape {tuple(input_shape)}")
    from transformers.utils import logging as hf_logging

    # transformers logs a LOAD REPORT (the checkpoint's pooler keys left unused) at warning
    # and draws a "Loading weights" bar on every build — the driver's check and each
    # worker's; they are for -v (root logger at INFO)
    level, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    if not logging.getLogger().isEnabledFor(logging.INFO):
        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
    try:
        # no pooler: the head pools itself, and an unused pooler would trip DDP when fine-tuning
        encoder = AutoModel.from_pretrained(
            str(resolve_path(pretrained_path)), local_files_only=True, add_pooling_layer=False
        )
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()
    return EncoderClassifier(encoder, num_outputs, pad_id, dropout)
