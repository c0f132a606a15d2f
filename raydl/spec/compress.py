"""``compress:``: the candidates built from the trained model, how each is measured, and
the rule that selects the one serving uses."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from raydl.spec.base import Section
from raydl.spec.model import ModelSpec

# The techniques this version builds (one candidate each, beside the original fp32 model).
Technique = Literal[
    "dynamic_int8", "static_int8", "fp16", "bf16", "onnx", "onnx_int8", "prune_l1", "prune_structured"
]
DEFAULT_TECHNIQUES: list[Technique] = ["dynamic_int8", "onnx", "onnx_int8"]


class SelectSpec(Section):
    metric: str | None = Field(
        None,
        description="Test metric the gate compares (default: accuracy, or rmse for regression).",
    )
    max_metric_drop: float = Field(
        0.01,
        ge=0,
        description="Largest loss of the metric a candidate may have (absolute: 0.01 = 1 point of accuracy).",
    )
    prefer: Literal["latency", "size"] = Field(
        "latency", description="Among the candidates that pass, the fastest at batch 1 or the smallest file."
    )
    latency_budget_ms: float | None = Field(
        None, gt=0, description="A candidate slower than this p50 latency at batch 1 (ms) fails the gate."
    )


class MeasureSpec(Section):
    threads: int = Field(1, ge=1, description="torch and onnxruntime intra-op threads while measuring.")
    warmup: int = Field(10, ge=0, description="Untimed calls before each latency/throughput measurement.")
    repetitions: int = Field(100, ge=1, description="Timed batch-1 calls per candidate (p50/p95 over them).")
    throughput_batches: int = Field(
        20, ge=1, description="Timed calls at the throughput batch size per candidate."
    )
    batch_size: int = Field(64, ge=1, description="Batch size of the throughput measurement.")


class RobustnessSpec(Section):
    epsilon: float = Field(
        0.1,
        ge=0,
        description="L-inf bound of the FGSM/PGD perturbation, in the model input's scaled units (after "
        "the run's preprocessing: standardized features, or pixels after data.image's scaling and "
        "normalization); the perturbed input is not clipped back to a pixel range.",
    )
    pgd_steps: int = Field(10, ge=1, description="Gradient-sign steps of PGD (from the clean input).")
    pgd_step_size: float | None = Field(
        None, gt=0, description="Size of one PGD step (default: 2.5 * epsilon / pgd_steps)."
    )
    rows: int = Field(256, ge=1, description="Test rows attacked (the first ones of the test split).")


class DistillSpec(Section):
    student: ModelSpec = Field(
        description="The student, as model: is written ({arch, params}), e.g. "
        "{arch: mobilenet, params: {width: 0.25}}; it trains with the run's train: settings."
    )
    temperature: float = Field(
        4.0, gt=0, description="Softmax temperature T of the teacher's and the student's logits."
    )
    alpha: float = Field(
        0.7,
        ge=0,
        le=1,
        description="Weight of the soft loss α·T²·KL(teacher ‖ student); the labels' loss weighs 1 − α.",
    )
    epochs: int | None = Field(None, ge=1, description="Epochs the student trains (default: train.epochs).")
    baseline: bool = Field(
        True,
        description="Also train the student alone (labels only; same epochs, seed and train: settings) "
        "as the row student_alone, never served: what distillation bought.",
    )


class CompressSpec(Section):
    techniques: list[Technique] = Field(
        default_factory=lambda: list(DEFAULT_TECHNIQUES),
        min_length=1,
        description=(
            "Candidates built from the trained fp32 model: dynamic_int8 (torch int8 Linear/LSTM), "
            "static_int8 (torch int8 weights and activations of a CNN, calibrated on train rows), "
            "fp16/bf16 (half-precision weights), onnx (onnxruntime fp32), onnx_int8 (onnxruntime int8), "
            "prune_l1 (smallest weights zeroed), prune_structured (channels/neurons removed, Torch-Pruning)."
        ),
    )
    prune_amount: float = Field(
        0.5, gt=0, lt=1, description="Share of the weights (prune_l1) or channels (prune_structured) removed."
    )
    finetune_epochs: int = Field(
        0,
        ge=0,
        description="Epochs of Ray Train fine-tuning after prune_structured (train: settings; 0: none).",
    )
    calibration_rows: int = Field(
        256, ge=1, description="Train rows (preprocessed) that calibrate static_int8's activation ranges."
    )
    robustness: RobustnessSpec | None = Field(
        None,
        description="FGSM and PGD accuracy of every candidate (classification on tensor/image input; "
        "int8 and ONNX candidates are attacked with the original's adversarial rows: a transfer "
        "attack); null: not measured.",
    )
    measure: MeasureSpec = Field(default_factory=MeasureSpec, description="How every candidate is timed.")
    select: SelectSpec = Field(default_factory=SelectSpec, description="How the served candidate is chosen.")
    distill: DistillSpec | None = Field(
        None,
        description="Knowledge distillation of the trained model (the teacher) into a student, "
        "trained on Ray Train: the candidate distilled (classification only).",
    )
