"""Hugging Face ``transformers`` models built from a config (random init): a BERT-style
encoder classifier and a GPT-2-style causal language model. Both take token ids
``(B, T)``; the attention mask is ``x != pad_id``."""

from __future__ import annotations

import torch
import torch.nn as nn

from raydl.models import MODELS


def _need_tokens(name: str, input_shape, vocab_size: int | None) -> int:
    """``vocab_size``, checked: these models take token ids and need the vocabulary's size.

    Raises:
        ValueError: the input is not 1-d token ids, or no vocab_size was given.
    """
    if not vocab_size or len(input_shape) != 1:
        raise ValueError(
            f"{name} needs token ids: 1-d input and a vocab_size (text data passes it), "
            f"got shape {tuple(input_shape)} and vocab_size {vocab_size}"
        )
    return vocab_size


class BertClassifier(nn.Module):
    """``BertForSequenceClassification`` returning plain logits ``(B, num_outputs)``."""

    def __init__(self, model: nn.Module, pad_id: int) -> None:
        super().__init__()
        self.model, self.pad_id = model, pad_id

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.long()
        return self.model(input_ids=x, attention_mask=(x != self.pad_id).long()).logits


@MODELS.register("bert")
def bert(
    input_shape: tuple[int, ...],
    num_outputs: int,
    vocab_size: int | None = None,
    pad_id: int = 0,
    max_length: int | None = None,
    hidden: int = 128,
    layers: int = 2,
    heads: int = 2,
    intermediate: int = 256,
    dropout: float = 0.1,
) -> nn.Module:
    """A BERT encoder from ``transformers.BertConfig`` (randomly initialised) with a
    classification head on the pooled [CLS] state."""
    from transformers import BertConfig, BertForSequenceClassification

    vocab = _need_tokens("bert", input_shape, vocab_size)
    config = BertConfig(
        vocab_size=vocab,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=intermediate,
        hidden_dropout_prob=dropout,
        attention_probs_dropout_prob=dropout,
        max_position_embeddings=max(max_length or input_shape[0], input_shape[0]),
        pad_token_id=pad_id,
    )
    config.num_labels = num_outputs  # a PretrainedConfig property: sets id2label/label2id too
    return BertClassifier(BertForSequenceClassification(config), pad_id)


class CausalLM(nn.Module):
    """``GPT2LMHeadModel`` returning next-token logits ``(B, T, vocab_size)``; the
    language-modeling objective (:mod:`raydl.train.objectives`) shifts them."""

    def __init__(self, model: nn.Module, pad_id: int) -> None:
        super().__init__()
        self.model, self.pad_id = model, pad_id

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.long()
        return self.model(input_ids=x, attention_mask=(x != self.pad_id).long()).logits


@MODELS.register("gpt2")
def gpt2(
    input_shape: tuple[int, ...],
    num_outputs: int,
    vocab_size: int | None = None,
    pad_id: int = 0,
    max_length: int | None = None,
    dim: int = 128,
    layers: int = 2,
    heads: int = 2,
    dropout: float = 0.1,
) -> nn.Module:
    """A GPT-2 decoder from ``transformers.GPT2Config`` (randomly initialised); its metric
    is perplexity (``data.task: language_modeling``). ``num_outputs`` is unused: the
    head predicts the vocabulary."""
    from transformers import GPT2Config, GPT2LMHeadModel

    del num_outputs
    vocab = _need_tokens("gpt2", input_shape, vocab_size)
    config = GPT2Config(
        vocab_size=vocab,
        n_positions=max(max_length or input_shape[0], input_shape[0]),
        n_embd=dim,
        n_layer=layers,
        n_head=heads,
        resid_pdrop=dropout,
        embd_pdrop=dropout,
        attn_pdrop=dropout,
        pad_token_id=pad_id,
    )
    return CausalLM(GPT2LMHeadModel(config), pad_id)
