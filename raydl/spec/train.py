"""``train:``: the distributed training run — workers, strategy, optimizer, schedule, loss,
control and checkpoints."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from raydl.catalog import LOSSES, OPTIMIZERS, SCHEDULERS
from raydl.spec.base import Section, registered


class OptimizerSpec(Section):
    type: Annotated[str, registered(OPTIMIZERS)] = Field(
        "adamw", description="sgd, adam, adamw, rmsprop, or 'module:function'."
    )
    lr: float = Field(1e-3, gt=0, description="Learning rate.")
    weight_decay: float = Field(0.0, ge=0, description="Weight decay.")
    momentum: float = Field(0.9, ge=0, lt=1, description="Momentum (sgd).")
    nesterov: bool = Field(False, description="Nesterov momentum (sgd).")
    betas: tuple[float, float] = Field((0.9, 0.999), description="Adam betas.")
    alpha: float = Field(0.99, gt=0, lt=1, description="Smoothing constant (rmsprop).")


class SchedulerSpec(Section):
    type: Annotated[str, registered(SCHEDULERS)] = Field(
        "none", description="none, cosine, step, one_cycle, plateau, or 'module:function'."
    )
    warmup_epochs: int = Field(0, ge=0, description="Linear warm-up epochs (cosine).")
    step_size: int = Field(10, gt=0, description="Epochs between decays (step).")
    gamma: float = Field(0.1, gt=0, le=1, description="Decay factor (step).")
    min_lr: float = Field(0.0, ge=0, description="Final learning rate (cosine, plateau's floor).")
    pct_start: float = Field(
        0.3, gt=0, lt=1, description="Share of steps rising to train.optimizer.lr (one_cycle)."
    )
    metric: str = Field("val_loss", description="The metric watched once per epoch (plateau).")
    mode: Literal["min", "max"] | None = Field(
        None, description="Default: min for *loss, else max (plateau)."
    )
    patience: int = Field(2, ge=0, description="Epochs without improvement before a decay (plateau).")


class LossSpec(Section):
    type: Annotated[str | None, registered(LOSSES)] = Field(
        None,
        description="cross_entropy, bce, focal, mse, mae, huber, weighted_sum, or 'module:function'; "
        "default: cross_entropy for classification, mse for regression.",
    )
    label_smoothing: float = Field(0.0, ge=0, lt=1, description="Label smoothing (cross_entropy).")
    delta: float = Field(1.0, gt=0, description="Huber delta.")
    class_weights: list[float] | None = Field(
        None,
        description="Per-class weights, index = class id (cross_entropy, focal); default: the "
        "preprocessor's when data.balance is class_weights.",
    )
    gamma: float = Field(2.0, ge=0, description="Focusing exponent (focal).")
    weight: float = Field(1.0, ge=0, description="This term's weight inside weighted_sum.")
    terms: list[LossSpec] = Field(
        default_factory=list,
        description="weighted_sum: the losses added, each with its weight; term i scores head i "
        "when the model returns one output per head, else all score the one output.",
    )


class EarlyStoppingSpec(Section):
    metric: str = Field("val_loss", description="A metric that training reports.")
    mode: Literal["min", "max"] | None = Field(None, description="Default: min for *loss, else max.")
    patience: int = Field(5, ge=1, description="Epochs without improvement before stopping.")
    min_delta: float = Field(0.0, ge=0, description="Smallest change that counts as improvement.")


class CheckpointSpec(Section):
    metric: str = Field("val_loss", description="The metric that picks the best checkpoint.")
    mode: Literal["min", "max"] | None = Field(None, description="Default: min for *loss, else max.")
    keep: int = Field(
        2, ge=1, description="Checkpoints kept: the best by metric (Ray Train also keeps the latest)."
    )
    every: int = Field(1, ge=1, description="Save a checkpoint every N epochs (and at the last epoch).")


class AdversarialSpec(Section):
    epsilon: float = Field(
        0.1,
        gt=0,
        description="L-inf size of the FGSM perturbation, in the model input's scaled units (after the "
        "run's preprocessing), as compress.robustness measures it; not clipped to a pixel range.",
    )
    share: float = Field(
        0.5,
        gt=0,
        le=1,
        description="Share of each train batch replaced by its FGSM examples, crafted against the model "
        "at that step (the first rows of the shuffled batch).",
    )


class TrainSpec(Section):
    workers: int = Field(2, ge=1, description="Ray Train workers (DDP processes).")
    cpus_per_worker: float = Field(
        1.0, gt=0, description="Logical CPUs each worker reserves; leave some for Ray Data."
    )
    use_gpu: bool = Field(False, description="One GPU per worker; NCCL instead of gloo.")
    strategy: Literal["ddp", "deepspeed"] = Field(
        "ddp",
        description="ddp: torch DDP (gloo on CPU, NCCL on GPU); deepspeed: DeepSpeed ZeRO "
        "(zero_stage), its config derived from this section.",
    )
    zero_stage: Literal[1, 2, 3] = Field(
        2, description="DeepSpeed ZeRO stage: 1 shards optimizer state, 2 also gradients, 3 also weights."
    )
    precision: Literal["fp32", "bf16", "fp16"] = Field("fp32", description="Compute precision.")
    epochs: int = Field(10, ge=1, description="Passes over the train split.")
    batch_size: int = Field(64, ge=1, description="Global batch size: split evenly over the workers.")
    optimizer: OptimizerSpec = Field(
        default_factory=OptimizerSpec, description="The optimizer and its settings."
    )
    scheduler: SchedulerSpec = Field(
        default_factory=SchedulerSpec,
        description="The learning-rate schedule (stepped per optimizer step; plateau per epoch).",
    )
    loss: LossSpec = Field(default_factory=LossSpec, description="The training loss.")
    grad_clip: float | None = Field(None, gt=0, description="Max global gradient norm.")
    grad_norm_limit: float | None = Field(
        None,
        gt=0,
        description="A step whose global gradient norm (before clipping) exceeds this is an "
        "exploding step, handled like a NaN/Inf loss by on_bad_step.",
    )
    on_bad_step: Literal["stop", "skip"] = Field(
        "stop",
        description="A step with a NaN/Inf loss or gradient norm, or a norm above "
        "grad_norm_limit: stop the run (naming the epoch and step) or skip its update.",
    )
    early_stopping: EarlyStoppingSpec | None = Field(None, description="Stop when a metric stalls.")
    checkpoint: CheckpointSpec = Field(
        default_factory=CheckpointSpec, description="Which checkpoints are kept, and how often one is saved."
    )
    max_failures: int = Field(0, ge=0, description="Worker-group restarts before the run fails.")
    grad_accumulation: int = Field(
        1,
        ge=1,
        description="Micro-batches (of batch_size each) whose gradients are averaged into one "
        "optimizer step: an effective batch of batch_size x grad_accumulation. DDP all-reduces "
        "once per step (no_sync on the others); DeepSpeed gets it as gradient_accumulation_steps. "
        "Clipping, the gradient norm and bad-step checks act once per step; schedules count "
        "steps; an epoch's last, shorter window is averaged over its own micro-batches.",
    )
    adversarial: AdversarialSpec | None = Field(
        None,
        description="Adversarial training (classification of tensor/image/tabular input, DDP): a share "
        "of each train batch replaced by FGSM examples, {epsilon, share}; compress.robustness "
        "measures what it bought.",
    )
    deterministic: bool = Field(
        True,
        description="Reproducible training: Ray Data hands the train and val blocks to the "
        "workers in dataset order (not by locality or by who asks first), each epoch's "
        "randomness (shuffle, dropout, augmentation) is seeded from (seed, epoch, rank), and "
        "cuDNN picks deterministic kernels. The same seed gives the same batches on every "
        "run and after a restart from a checkpoint. false: Ray Data may dispatch blocks by "
        "node locality (less cross-node traffic on a multi-node cluster), runs differ.",
    )
