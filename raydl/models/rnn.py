"""LSTM and GRU sequence classifiers, uni- or bidirectional.

Input is either token ids ``(B, T)`` int64 (give ``vocab_size``: text data passes it from
its ``data_info``) or float sequences ``(B, T, F)`` (``input_shape == (T, F)``).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from raydl.models import MODELS


class RNNClassifier(nn.Module):
    def __init__(
        self,
        cell,
        input_shape,
        num_outputs,
        vocab_size,
        pad_id,
        embed_dim,
        hidden,
        layers,
        bidirectional,
        dropout,
    ) -> None:
        super().__init__()
        self.pad_id = pad_id
        if vocab_size:
            self.embed: nn.Module | None = nn.Embedding(vocab_size, embed_dim, padding_idx=pad_id)
            features = embed_dim
        elif len(input_shape) == 2:
            self.embed, features = None, input_shape[1]
        else:
            raise ValueError(
                f"a sequence model needs token ids (set vocab_size) or (T, F) float input, "
                f"got shape {tuple(input_shape)}"
            )
        rnn = nn.LSTM if cell == "lstm" else nn.GRU
        self.rnn = rnn(
            features,
            hidden,
            layers,
            batch_first=True,
            bidirectional=bidirectional,
            dropout=dropout if layers > 1 else 0.0,
        )
        self.head = nn.Sequential(
            nn.Dropout(dropout), nn.Linear(hidden * (2 if bidirectional else 1), num_outputs)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.embed is not None:
            mask = (x != self.pad_id).unsqueeze(-1).float()  # (B, T, 1)
            seq = self.embed(x.long())
        else:
            mask = torch.ones(*x.shape[:2], 1, device=x.device)
            seq = x.float()
        out, _ = self.rnn(seq)  # (B, T, H·dirs)
        # masked mean over time: padding never dilutes a short sequence
        pooled = (out * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        return self.head(pooled)


def _build(cell: str):
    def build(
        input_shape: tuple[int, ...],
        num_outputs: int,
        vocab_size: int | None = None,
        pad_id: int = 0,
        max_length: int | None = None,
        embed_dim: int = 64,
        hidden: int = 64,
        layers: int = 1,
        bidirectional: bool = False,
        dropout: float = 0.0,
    ) -> nn.Module:
        del max_length  # any length works; accepted so text data's data_info fits
        return RNNClassifier(
            cell,
            input_shape,
            num_outputs,
            vocab_size,
            pad_id,
            embed_dim,
            hidden,
            layers,
            bidirectional,
            dropout,
        )

    build.__name__ = cell
    build.__doc__ = f"{cell.upper()} → masked mean over time → Linear; ``bidirectional`` doubles the state."
    return build


MODELS.register("lstm")(_build("lstm"))
MODELS.register("gru")(_build("gru"))
