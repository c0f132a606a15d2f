"""``model.params`` of each registered architecture: one class per builder, so a typo or a
bad value is found before Ray starts and ``raydl schema`` shows what each arch takes.

Each class mirrors its builder's keyword arguments (``raydl.models.<family>``), with the
same defaults; ``tests/unit/test_model_params.py`` holds the two to each other. The
builder keeps its defaults: ``model.params`` stays the mapping the user wrote, and facts
of the preprocessed data (``vocab_size``, ``pad_id``, ``max_length``,
``id_cardinalities``) reach a builder that names them unless ``model.params`` sets them.
User code (``module:function``) is checked against its own signature instead.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from raydl.spec.base import Section

Width = Annotated[int, Field(ge=1)]
Dropout = Field(0.0, ge=0, le=1, description="Dropout probability.")
_FROM_TEXT = "default: the text preprocessor's"


class Params(Section):
    """Base of the params classes; the builder's own checks still apply when it builds."""


def _heads_divide(name: str, width: int, heads: int) -> None:
    """Attention splits the width evenly over the heads."""
    if width % heads:
        raise ValueError(f"{name} ({width}) must be a multiple of heads ({heads})")


class MlpParams(Params):
    hidden: list[Width] = Field([128, 64], description="Widths of the hidden layers, in order ([] for none).")
    dropout: float = Field(0.0, ge=0, lt=1, description="Dropout after each hidden layer.")
    activation: Literal["relu", "gelu", "tanh", "silu"] = Field("relu", description="Hidden activation.")
    batch_norm: bool = Field(False, description="BatchNorm after each hidden Linear.")
    id_cardinalities: list[int] | None = Field(
        None,
        description="Ids per categorical id column (0 = unknown), embedded one table each; "
        "default: the preprocessing's (data.features.categorical: onehot above max_onehot).",
    )
    embedding_dim: int | None = Field(
        None, ge=1, description="Widest embedding of an id column (default 16; about half the ids)."
    )


class CnnParams(Params):
    channels: list[Width] = Field(
        [32, 64], description="Output channels of each conv stage (each pools by 2)."
    )
    kernel_size: int = Field(3, ge=1, description="Side of the conv kernels.")
    hidden: int = Field(128, ge=1, description="Width of the dense layer after the conv stages.")
    dropout: float = Field(0.0, ge=0, le=1, description="Dropout before the output layer.")
    batch_norm: bool = Field(True, description="BatchNorm after each conv.")


class ResnetParams(Params):
    widths: list[Width] = Field(
        [16, 32, 64], min_length=1, description="Channels of each stage; each after the first halves the map."
    )
    blocks: list[Width] = Field(
        [1, 1, 1], min_length=1, description="BasicBlocks per stage (as many entries as widths)."
    )
    dropout: float = Dropout

    @model_validator(mode="after")
    def _one_block_count_per_stage(self) -> ResnetParams:
        if len(self.widths) != len(self.blocks):
            raise ValueError(f"widths {self.widths} and blocks {self.blocks} must have one length")
        return self


class Resnet18Params(Params):
    width: int = Field(
        64, ge=1, description="Channels of the first stage (then ×2, ×4, ×8); 64 is the paper's."
    )
    dropout: float = Dropout


class MobilenetParams(Params):
    width: float = Field(
        1.0, gt=0, description="Width multiplier of every layer's channels (0.5: half; rounded to 8s)."
    )
    dropout: float = Dropout


class VitParams(Params):
    patch: int = Field(
        4, ge=1, description="Side of the square patches; must divide the image's height and width."
    )
    dim: int = Field(64, ge=1, description="Token width.")
    depth: int = Field(4, ge=1, description="Encoder layers.")
    heads: int = Field(4, ge=1, description="Attention heads; must divide dim.")
    mlp_ratio: float = Field(2.0, gt=0, description="Feed-forward width as a multiple of dim.")
    dropout: float = Dropout

    @model_validator(mode="after")
    def _heads_divide_dim(self) -> VitParams:
        _heads_divide("dim", self.dim, self.heads)
        return self


class _TokenParams(Params):
    vocab_size: int | None = Field(None, ge=1, description=f"Token ids the embedding holds; {_FROM_TEXT}.")
    pad_id: int = Field(0, ge=0, description=f"The padding token's id; {_FROM_TEXT}.")
    max_length: int | None = Field(None, ge=1, description=f"Tokens per example; {_FROM_TEXT}.")


class RnnParams(_TokenParams):
    embed_dim: int = Field(64, ge=1, description="Token embedding width (token-id input).")
    hidden: int = Field(64, ge=1, description="Recurrent state width (per direction).")
    layers: int = Field(1, ge=1, description="Stacked recurrent layers.")
    bidirectional: bool = Field(False, description="Read the sequence both ways (doubles the state).")
    dropout: float = Field(
        0.0, ge=0, le=1, description="Dropout between recurrent layers and before the head."
    )


class BertParams(_TokenParams):
    hidden: int = Field(128, ge=1, description="Hidden size.")
    layers: int = Field(2, ge=1, description="Encoder layers.")
    heads: int = Field(2, ge=1, description="Attention heads; must divide hidden.")
    intermediate: int = Field(256, ge=1, description="Feed-forward width.")
    dropout: float = Field(0.1, ge=0, le=1, description="Hidden and attention dropout.")

    @model_validator(mode="after")
    def _heads_divide_hidden(self) -> BertParams:
        _heads_divide("hidden", self.hidden, self.heads)
        return self


class Gpt2Params(_TokenParams):
    dim: int = Field(128, ge=1, description="Embedding width.")
    layers: int = Field(2, ge=1, description="Decoder layers.")
    heads: int = Field(2, ge=1, description="Attention heads; must divide dim.")
    dropout: float = Field(0.1, ge=0, le=1, description="Residual, embedding and attention dropout.")

    @model_validator(mode="after")
    def _heads_divide_dim(self) -> Gpt2Params:
        _heads_divide("dim", self.dim, self.heads)
        return self


class VaeParams(Params):
    latent: int = Field(16, ge=1, description="Width of the latent code z.")
    hidden: list[Width] = Field([256, 128], description="Encoder widths (the decoder mirrors them).")
    recon: Literal["mse", "bce"] = Field(
        "mse", description="Reconstruction loss: mse for standardised inputs, bce for inputs in [0, 1]."
    )
    beta: float = Field(1.0, ge=0, description="Weight of the KL term (β-VAE).")


class HfEncoderParams(Params):
    pretrained_path: str | None = Field(
        None, description="The encoder's folder (or module:function); default: model.pretrained.path."
    )
    pad_id: int = Field(0, ge=0, description=f"The padding token's id; {_FROM_TEXT}.")
    max_length: int | None = Field(None, ge=1, description=f"Tokens per example; {_FROM_TEXT}.")
    dropout: float = Field(0.1, ge=0, le=1, description="Dropout before the new head.")


class EmbeddingBagParams(Params):
    vocab_size: int | None = Field(None, ge=1, description=f"Token ids the embedding holds; {_FROM_TEXT}.")
    pad_id: int = Field(0, ge=0, description=f"The padding token's id; {_FROM_TEXT}.")
    dim: int = Field(64, ge=1, description="Embedding width.")
    hidden: list[Width] = Field([], description="Widths of the hidden layers after the mean embedding.")
    dropout: float = Dropout


ARCH_PARAMS: dict[str, type[Params]] = {
    "mlp": MlpParams,
    "cnn": CnnParams,
    "resnet": ResnetParams,
    "resnet18": Resnet18Params,
    "mobilenet": MobilenetParams,
    "vit": VitParams,
    "lstm": RnnParams,
    "gru": RnnParams,
    "bert": BertParams,
    "gpt2": Gpt2Params,
    "vae": VaeParams,
    "hf_encoder": HfEncoderParams,
    "embedding_bag": EmbeddingBagParams,
}
