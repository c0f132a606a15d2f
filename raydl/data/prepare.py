"""The data stage: source → splits → preprocessing fitted on train → streaming datasets.

Returns Ray Datasets of rows ``{"x": float32 array, "y": label}`` for train, val and
test; nothing is collected to the driver but small statistics.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import pyarrow as pa
import ray
from ray.data.dataset import MaterializedDataset

from raydl.data.balance import class_weights, resample, smote
from raydl.data.clean import clean, column_stats, numeric_looking
from raydl.data.preprocess import Preprocessor, fit_preprocessor, fit_table, fit_text_preprocessor
from raydl.data.sources import read_source
from raydl.data.split import (
    HASH_COLUMN,
    SPLITS,
    SplitRule,
    even_blocks,
    plan_splits,
    seeded_order,
    take_fold,
    take_split,
)
from raydl.errors import DataError
from raydl.spec import JobSpec

log = logging.getLogger(__name__)


@dataclass
class PreparedData:
    """The data stage's result.

    Attributes:
        datasets: train/val/test rows ``{"x", "y"}``, preprocessed.
        preprocessor: fitted on the train split.
        report: what data_report.json holds.
        spec: the job spec the data was prepared for.
        rows: the cleaned raw rows with their content hash (materialized), for folds.
        rule: the split rule that routes ``rows``.
        refit: fits a preprocessor, as the spec says, on other train rows (folds).
    """

    datasets: dict[str, ray.data.Dataset]
    preprocessor: Preprocessor
    report: dict[str, Any]
    spec: JobSpec | None = None
    rows: ray.data.Dataset | None = None
    rule: SplitRule | None = None
    refit: Callable[[ray.data.Dataset], Preprocessor] | None = None


def _is_number(t: pa.DataType) -> bool:
    return pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t)


def _feature_columns(spec: JobSpec, ds: ray.data.Dataset, schema: pa.Schema) -> tuple[list[str], list[str]]:
    """The (numeric, categorical) feature columns. A text column whose values are
    nearly all numbers is numeric with a few unparseable values (cleaning names them).

    Raises:
        DataError: a listed column does not exist, or a text column is found and
            categorical encoding is off.
    """
    label = spec.data.label
    names = list(schema.names)
    split_column = spec.data.split.column if spec.data.split.method in ("time", "group") else None
    wanted = spec.data.features.columns or [c for c in names if c not in (label, split_column)]
    missing = [c for c in wanted if c not in names]
    if missing:
        raise DataError(
            f"data.features.columns: no column {missing[0]!r} in the data; columns: {', '.join(names)}"
        )
    texts = [c for c in wanted if not _is_number(schema.field(c).type)]
    sample = ds.select_columns(texts).limit(1000).to_pandas() if texts else None
    numeric, categorical = [], []
    for c in wanted:
        if c not in texts or (sample is not None and numeric_looking(sample[c])):
            numeric.append(c)
        else:
            categorical.append(c)
    if categorical and spec.data.features.categorical == "none":
        c = categorical[0]
        kind = schema.field(c).type
        kind = "text" if pa.types.is_string(kind) or pa.types.is_large_string(kind) else kind
        raise DataError(
            f"data: column {c!r} is {kind}, not numeric; set data.features.categorical "
            "(onehot or ordinal) or list the numeric columns in data.features.columns"
        )
    return numeric, categorical


def _check_text_column(column: str, names: list[str], schema: pa.Schema | None) -> None:
    if column not in names:
        raise DataError(f"data.text.column: no column {column!r} in the data; columns: {', '.join(names)}")
    kind = schema.field(column).type if schema is not None else None
    if kind is not None and not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
        raise DataError(f"data.text.column: column {column!r} holds {kind}, not text")


def _should_cache(mode: str, rows: dict[str, int], input_shape: list[int]) -> list[str]:
    """The splits read every epoch (train, val) to keep preprocessed in the object store.

    Re-running the preprocessing every epoch costs CPU that, on a small machine, the
    training workers need; a cached split is only read. ``auto`` caches when the float32
    rows fill at most a quarter of the object store.
    """
    if mode == "never":
        return []
    splits = ["train", "val"]
    if mode == "always":
        return splits
    size = sum(rows[s] for s in splits) * (int(np.prod(input_shape)) + 2) * 4
    capacity = ray.cluster_resources().get("object_store_memory", 0)
    return splits if size <= capacity / 4 else []


def _balance(
    spec: JobSpec,
    train_raw: ray.data.Dataset,
    pre: Preprocessor,
    before: dict[str, int] | None,
    cached: bool,
) -> tuple[ray.data.Dataset, dict[str, Any]]:
    """The preprocessed train split, balanced as the spec says, and the class counts
    before and after (class weights change no rows: they go into ``pre``; ``before``
    gives the train class counts they need, else they are counted here).

    The workers' local shuffle buffer mixes only a few batches, so a train split that is
    cached is first put in a seeded random order (one sort, paid once); an uncached one
    would pay it every epoch, so its blocks are only visited in a random order."""

    def ordered(rows: ray.data.Dataset) -> ray.data.Dataset:
        if cached:
            return seeded_order(rows, spec.seed)
        return rows.randomize_block_order(seed=spec.seed)

    how = spec.data.balance
    if how in ("oversample", "undersample"):
        rows, before, after = resample(train_raw, how, spec.data.label, spec.seed)
        return ordered(rows).map_batches(pre, batch_format="numpy"), {"before": before, "after": after}
    train = ordered(train_raw).map_batches(pre, batch_format="numpy")
    if how == "smote":
        if pre.feature_columns is None:
            raise DataError("data.balance: smote works on table features; use oversample or class_weights")
        train, before, after = smote(train, spec.seed, id_columns=len(pre.id_columns))
        return train, {"before": before, "after": after}
    if how == "class_weights":
        if before is None:
            y = np.concatenate(
                [b["y"] for b in train.select_columns(["y"]).iter_batches(batch_format="numpy")]
            )
            classes = pre.classes or []
            before = {str(classes[k]): int(n) for k, n in zip(*np.unique(y, return_counts=True))}
        pre.class_weights = class_weights(before, pre.classes or [])
    return train, {"before": before, "after": before}


@contextlib.contextmanager
def _ordered(spec: JobSpec) -> Iterator[None]:
    """``train.deterministic``: every dataset built inside keeps its blocks in order when
    it runs (a dataset keeps the Ray Data context it was built in), so a cached split
    materializes the same on every run, and a streamed one reaches training in order."""
    options = ray.data.DataContext.get_current().execution_options
    before = options.preserve_order
    options.preserve_order = before or spec.train.deterministic
    try:
        yield
    finally:
        options.preserve_order = before


def _cache_train(spec: JobSpec, train: ray.data.Dataset) -> MaterializedDataset:
    """A train split kept in the object store; deterministic: in equal blocks, so the
    workers get the same batches on every run."""
    return even_blocks(train) if spec.train.deterministic else train.materialize()


def prepare_data(spec: JobSpec, preprocessor: Preprocessor | None = None) -> PreparedData:
    """Run the data stage of a validated spec on the connected Ray cluster.

    With ``preprocessor`` (a fitted one, from a run directory) nothing is refitted.

    Raises:
        DataError: the source is missing, or its columns are not what the spec says.
    """
    with _ordered(spec):
        return _prepare(spec, preprocessor)


def _prepare(spec: JobSpec, preprocessor: Preprocessor | None) -> PreparedData:
    data = spec.data
    ds, info = read_source(data)
    schema = ds.schema()
    if schema is None:
        raise DataError(f"data.source: {data.source.type} source produced no rows")
    arrow = schema.base_schema if isinstance(schema.base_schema, pa.Schema) else None
    names = list(schema.names)
    language_model = data.task == "language_modeling"  # token ids only: no label column
    if not language_model and data.label not in names:
        raise DataError(f"data.label: no column {data.label!r} in the data; columns: {', '.join(names)}")

    feature_columns = None
    numeric: list[str] = []
    categorical: list[str] = []
    if data.text is not None:
        _check_text_column(data.text.column, names, arrow)
    elif info.tensor_shape is None:
        if arrow is None:
            arrow = pa.schema(
                [
                    (n, t if isinstance(t, pa.DataType) else pa.from_numpy_dtype(np.dtype(t)))
                    for n, t in zip(names, schema.types)
                ]
            )
        numeric, categorical = _feature_columns(spec, ds, arrow)
        feature_columns = numeric + categorical

    # One materialized pass over the source parses values and adds a content hash; the
    # cleaning filters, the key scan and every split read it, so the source is read once.
    cleaned = clean(ds, data.clean, numeric, categorical)
    hashed = cleaned.rows
    # a language model's rows carry no label: the split reads only their content hash
    split_label = HASH_COLUMN if language_model else data.label
    rule, counts = plan_splits(hashed, data.split, split_label, spec.seed, data.task)
    for name, n in counts["rows"].items():
        if n == 0:
            raise DataError(f"data.split: the {name} split is empty; use more data or a larger fraction")
    classes = counts["classes"]
    if classes is not None and len(classes) < 2:
        raise DataError(f"data.label: classification needs 2 or more classes, found {classes}")

    if feature_columns is None:
        fit = partial(
            fit_preprocessor,
            task=data.task,
            label=data.label,
            feature_columns=None,
            tensor_shape=info.tensor_shape,
            image_shape=data.image.shape if data.image else None,
            scaling=data.features.numeric,
            classes=classes,
        )
    else:
        fit = partial(
            fit_table,
            task=data.task,
            label=data.label,
            numeric=numeric,
            categorical=categorical,
            encoding=data.features.categorical,
            max_onehot=data.features.max_onehot,
            pca=data.features.pca,
            scaling=data.features.numeric,
            classes=classes,
            image_shape=data.image.shape if data.image else None,
        )
    train_raw = take_split(hashed, rule, "train", keep_hash=True)
    if preprocessor is None and data.text is not None:
        preprocessor = fit_text_preprocessor(
            train_raw, text=data.text, task=data.task, label=data.label, classes=classes
        )
    preprocessor = preprocessor or fit(train_raw)
    datasets = {
        name: take_split(hashed, rule, name).map_batches(preprocessor, batch_format="numpy")
        for name in SPLITS
    }
    class_counts = counts["class_counts"]
    cached = _should_cache(data.cache, counts["rows"], preprocessor.input_shape)
    datasets["train"], balanced = _balance(
        spec, train_raw, preprocessor, class_counts["train"] if class_counts else None, "train" in cached
    )
    # the train split's raw feature statistics: the report's, and the drift reference
    feature_stats = {
        c: st.describe()
        for c, st in column_stats(train_raw, [c for c in numeric if c in (feature_columns or [])]).items()
    }
    for name in cached:
        ds = datasets[name]
        datasets[name] = _cache_train(spec, ds) if name == "train" else ds.materialize()
    report = {
        "source": data.source.model_dump(mode="json"),
        "rows_read": cleaned.steps[0]["rows_in"],
        "rows": sum(counts["rows"].values()),
        "steps": cleaned.steps,
        "duplicates": cleaned.duplicates,
        "missing": cleaned.missing,
        "outliers": cleaned.outliers,
        "fingerprint": counts["fingerprint"],
        "split": {"method": data.split.method, "seed": spec.seed, "rows": counts["rows"]}
        | ({"folds": counts["folds"]} if "folds" in counts else {}),
        "class_counts": (counts["class_counts"] | balanced) if counts["class_counts"] else None,
        "balance": data.balance,
        "features": feature_stats,
        "input_shape": preprocessor.input_shape,
        "feature_columns": feature_columns,
        "cached_splits": cached,
    }
    log.info("data: %d rows → train %d, val %d, test %d", report["rows"], *counts["rows"].values())
    return PreparedData(datasets, preprocessor, report, spec, hashed, rule, fit)


def fold_datasets(
    prepared: PreparedData, fold: int
) -> tuple[ray.data.Dataset, ray.data.Dataset, Preprocessor]:
    """The preprocessed (train, val) datasets of fold ``fold`` of a k-fold split, and the
    fold's preprocessor.

    val holds the rows of the fold, train the other non-test rows; the test split is in
    neither. The preprocessing is refitted on this fold's train rows (same input shape
    and classes as ``prepared.preprocessor``), so no fold sees its val rows in a fit, and
    the train rows are balanced as ``data.balance`` says. Both come back materialized:
    a fold is trained on for several epochs.

    Raises:
        DataError: the spec's split is not kfold, or ``fold`` is not in 0..k-1.
    """
    spec = prepared.spec
    assert spec is not None and prepared.rows is not None and prepared.rule is not None
    assert prepared.refit is not None  # prepare_data sets all four for a kfold split
    with _ordered(spec):
        train_raw, val_raw = take_fold(prepared.rows, prepared.rule, fold)
        pre = prepared.refit(train_raw)
        train, _ = _balance(spec, train_raw, pre, None, cached=True)
        return _cache_train(spec, train), val_raw.map_batches(pre, batch_format="numpy").materialize(), pre
