"""``compress:``: pruning, quantization, distillation and export of the trained model
(described and validated; refused at run time by this version)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from raydl.spec.base import Section
from raydl.spec.model import ModelSpec


class DistillSpec(Section):
    student: ModelSpec = Field(description="The smaller model trained on the teacher's outputs.")
    temperature: float = Field(
        4.0, gt=0, description="Softmax temperature of the teacher's and student's logits."
    )
    alpha: float = Field(
        0.7, ge=0, le=1, description="Weight of the distillation loss (1 - alpha: the label loss)."
    )


class SelectSpec(Section):
    max_accuracy_drop: float = Field(
        0.01, ge=0, description="Largest test-accuracy loss a compressed candidate may have."
    )
    prefer: Literal["latency", "size"] = Field(
        "latency", description="Among the candidates within the drop, the fastest or the smallest."
    )


class PruneSpec(Section):
    amount: float = Field(gt=0, lt=1, description="Share of the channels/weights removed.")


class CompressSpec(Section):
    prune: PruneSpec | None = Field(None, description="Structured pruning.")
    quantize: Literal["dynamic_int8", "static_int8"] | None = Field(None, description="Int8 quantization.")
    distill: DistillSpec | None = Field(None, description="Knowledge distillation into a student model.")
    export: Literal["onnx"] | None = Field(None, description="Export format of the selected model.")
    select: SelectSpec = Field(default_factory=SelectSpec, description="How the served candidate is chosen.")
