"""Every component family by name, without importing any member.

Each family is a :class:`~raydl.registry.Registry` whose names are *declared* here with
the module that implements (and registers) them, so the spec and its checks know every
name, and the facts they need about it, without torch, Ray or the member's libraries.
The implementing modules register their members under the same names when imported;
``tests/unit/test_catalog.py`` checks that both sides agree.

Facts live here when a check needs them: a builtin dataset's label column and task, the
tasks a metric applies to, what a strategy needs installed, whether a search algorithm
takes grid values. Everything else (how to build the member) stays with the member.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from raydl.registry import Registry

C, R, ML, LM = "classification", "regression", "multilabel", "language_modeling"


def _declare(registry: Registry[Any], module: str, names: dict[str, Any] | list[str]) -> None:
    items = names.items() if isinstance(names, dict) else ((n, None) for n in names)
    for name, info in items:
        registry.declare(name, module, info)


# ------------------------------------------------------------------------ models
# Each builder is ``build(input_shape, num_outputs, **params) -> nn.Module``; its params are
# described (and validated before Ray starts) by raydl.spec.model_params.
MODELS: Registry[Callable[..., Any]] = Registry("model")
for _module, _names in {
    "mlp": ["mlp"],
    "cnn": ["cnn"],
    "resnet": ["resnet", "resnet18"],
    "mobilenet": ["mobilenet"],
    "vit": ["vit"],
    "rnn": ["lstm", "gru"],
    "transformers_zoo": ["bert", "gpt2"],
    "vae": ["vae"],
    "pretrained": ["hf_encoder"],
    "embedding_bag": ["embedding_bag"],
}.items():
    _declare(MODELS, f"raydl.models.{_module}", _names)


# ------------------------------------------------------------------------- data
@dataclass(frozen=True)
class BuiltinInfo:
    """What a bundled dataset holds: its label column, its task, and whether its rows are
    text (then a spec must say how to tokenize)."""

    label: str
    task: str
    text: bool = False


SOURCES: Registry[Callable[..., Any]] = Registry("data source")
_declare(SOURCES, "raydl.data.sources", ["builtin", "parquet", "csv", "jsonl", "images", "hf_disk"])

BUILTINS: Registry[Callable[[], Any]] = Registry("builtin dataset")
_declare(
    BUILTINS,
    "raydl.data.sources",
    {
        "digits": BuiltinInfo("target", C),
        "iris": BuiltinInfo("target", C),
        "wine": BuiltinInfo("target", C),
        "breast_cancer": BuiltinInfo("target", C),
        "diabetes": BuiltinInfo("target", R),
        "fashion_mnist": BuiltinInfo("label", C),
        "bbc_news": BuiltinInfo("label", C, text=True),
    },
)
TEXT_BUILTINS = tuple(n for n in BUILTINS.names() if BUILTINS.info(n).text)


@dataclass(frozen=True)
class AugmentInfo:
    """What an augment step works on (images ``(C, H, W)``, any float input, token ids)
    and whether it mixes rows' labels into soft targets."""

    input: Literal["image", "float", "tokens"]
    mixes: bool = False


AUGMENTS: Registry[Callable[..., Any]] = Registry("augment step")
_declare(
    AUGMENTS,
    "raydl.data.augment",
    {
        **{
            name: AugmentInfo("image")
            for name in ("hflip", "vflip", "rotate", "resized_crop", "brightness", "contrast")
            + ("gaussian_noise", "gaussian_blur", "cutout")
        },
        "cutmix": AugmentInfo("image", mixes=True),
        "mixup": AugmentInfo("float", mixes=True),
        **{name: AugmentInfo("tokens") for name in ("random_deletion", "random_swap", "random_insertion")},
    },
)
IMAGE_AUGMENTS = tuple(n for n in AUGMENTS.names() if AUGMENTS.info(n).input == "image")
TEXT_AUGMENTS = tuple(n for n in AUGMENTS.names() if AUGMENTS.info(n).input == "tokens")


# ------------------------------------------------------------------------ train
OPTIMIZERS: Registry[Callable[..., Any]] = Registry("optimizer")
_declare(OPTIMIZERS, "raydl.train.optim", ["sgd", "adam", "adamw", "rmsprop"])
SCHEDULERS: Registry[Callable[..., Any]] = Registry("scheduler")
_declare(SCHEDULERS, "raydl.train.optim", ["none", "cosine", "step", "one_cycle", "plateau"])
LOSSES: Registry[Callable[..., Any]] = Registry("loss")
_declare(
    LOSSES, "raydl.train.optim", ["cross_entropy", "focal", "bce", "weighted_sum", "mse", "mae", "huber"]
)


@dataclass(frozen=True)
class StrategyInfo:
    """What a distributed strategy needs: a package to be installed; and, when it cannot
    skip a bad step's update (``train.on_bad_step: skip``), why not."""

    package: str | None = None
    no_skip_reason: str | None = None


STRATEGIES: Registry[Callable[..., Any]] = Registry("strategy")
_declare(
    STRATEGIES,
    "raydl.train.strategy",
    {
        "ddp": StrategyInfo(),
        "deepspeed": StrategyInfo(
            package="deepspeed", no_skip_reason="DeepSpeed reduces and applies gradients in one step"
        ),
    },
)


# ---------------------------------------------------------------------- metrics
@dataclass(frozen=True)
class MetricInfo:
    """The tasks a metric applies to, and whether it is one number (then training also
    reports it each epoch as ``val_<name>``)."""

    tasks: tuple[str, ...]
    scalar: bool = True


METRICS: Registry[Any] = Registry("metric")
_declare(
    METRICS,
    "raydl.train.metrics",
    {
        **{
            f"{m}_{avg}": MetricInfo((C,))
            for m in ("precision", "recall", "f1")
            for avg in ("macro", "micro")
        },
        **{f"{m}_per_class": MetricInfo((C,), scalar=False) for m in ("precision", "recall", "f1")},
        "accuracy": MetricInfo((C,)),
        "roc_auc": MetricInfo((C,)),
        "confusion_matrix": MetricInfo((C,), scalar=False),
        "perplexity": MetricInfo((C, LM)),
        **{m: MetricInfo((R,)) for m in ("mse", "rmse", "mae", "r2")},
        "hamming_loss": MetricInfo((ML,)),
        "jaccard": MetricInfo((ML,)),
    },
)
DEFAULT_METRICS = {
    C: ["accuracy", "precision_macro", "recall_macro", "f1_macro", "roc_auc"],
    R: ["mse", "rmse", "mae", "r2"],
    ML: ["hamming_loss", "jaccard"],
}
_REPORTED = {
    C: ["train_loss", "train_accuracy", "val_loss", "val_accuracy"],
    R: ["train_loss", "val_loss", "val_mae", "val_rmse"],
}
# The val metrics every epoch reports, besides the loss.
_IN_LOOP = {C: ["accuracy"], R: ["mae", "rmse"]}


def reported_metrics(task: str, extra: list[str] | None = None) -> list[str]:
    """The per-epoch metrics training reports for ``task`` (checkpoint/early-stop keys);
    ``extra`` are the spec's ``evaluate.metrics``, reported as ``val_<name>`` when scalar."""
    names = list(_REPORTED[task])
    for name in in_loop_metrics(task, extra):
        if f"val_{name}" not in names:
            names.append(f"val_{name}")
    return names


def in_loop_metrics(task: str, extra: list[str] | None = None) -> list[str]:
    """The named val metrics computed every epoch: the defaults plus the spec's scalar ones."""
    names = list(_IN_LOOP.get(task, []))
    for name in extra or []:
        info = METRICS.info(name) if name in METRICS else None
        if info is not None and info.scalar and task in info.tasks and name not in names:
            names.append(name)
    return names


def metric_mode(metric: str, mode: str | None) -> Literal["min", "max"]:
    """``mode`` if given, else min for losses, errors and perplexity, max for scores."""
    if mode is not None:  # the spec allows only min and max
        return "min" if mode == "min" else "max"
    return "min" if metric.endswith(("loss", "mae", "mse", "rmse", "perplexity")) else "max"


# ------------------------------------------------------------------------- tune
@dataclass(frozen=True)
class SpaceInfo:
    """How a ``tune.space`` entry is written: its arguments, and whether they are a
    ``[low, high]`` range (else a list of values)."""

    args: str
    bounds: bool


SPACES: Registry[Callable[[list[Any]], Any]] = Registry("search space")
_declare(
    SPACES,
    "raydl.tune.space",
    {
        "uniform": SpaceInfo("[low, high]", bounds=True),
        "loguniform": SpaceInfo("[low, high] with 0 < low", bounds=True),
        "randint": SpaceInfo("[low, high) integers", bounds=True),
        "choice": SpaceInfo("[value, ...]", bounds=False),
        "grid": SpaceInfo("[value, ...]", bounds=False),
    },
)


@dataclass(frozen=True)
class SearcherInfo:
    """A search algorithm that generates variants itself (grid, random) takes grid values
    and leaves PBT free to sample and mutate; a model-based one (TPE, …) does neither."""

    variants: bool


SEARCHERS: Registry[Callable[..., Any]] = Registry("search algorithm")
_declare(
    SEARCHERS,
    "raydl.tune.tuner",
    {
        "grid": SearcherInfo(variants=True),
        "random": SearcherInfo(variants=True),
        "optuna": SearcherInfo(variants=False),
        "hyperopt": SearcherInfo(variants=False),
    },
)


@dataclass(frozen=True)
class TrialSchedulerInfo:
    """Whether a trial scheduler acts on trials between epochs (stops or exploits them);
    FIFO lets every trial run to its end."""

    between_epochs: bool = True


TRIAL_SCHEDULERS: Registry[Callable[..., Any]] = Registry("trial scheduler")
_declare(
    TRIAL_SCHEDULERS,
    "raydl.tune.tuner",
    {
        "asha": TrialSchedulerInfo(),
        "hyperband": TrialSchedulerInfo(),
        "median": TrialSchedulerInfo(),
        "pbt": TrialSchedulerInfo(),
        "fifo": TrialSchedulerInfo(between_epochs=False),
    },
)
