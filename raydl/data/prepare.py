"""The data stage: source → splits → preprocessing fitted on train → streaming datasets.

Returns Ray Datasets of rows ``{"x": float32 array, "y": label}`` for train, val and
test; nothing is collected to the driver but small statistics.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import pyarrow as pa
import ray

from raydl.data.preprocess import Preprocessor, fit_preprocessor
from raydl.data.sources import read_source
from raydl.data.split import SPLITS, SplitRule, add_hash, plan_splits, take_fold, take_split
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


def _feature_columns(spec: JobSpec, schema: pa.Schema) -> list[str]:
    label = spec.data.label
    names = list(schema.names)
    wanted = spec.data.features.columns or [c for c in names if c != label]
    missing = [c for c in wanted if c not in names]
    if missing:
        raise DataError(
            f"data.features.columns: no column {missing[0]!r} in the data; columns: {', '.join(names)}"
        )
    not_numeric = [
        c
        for c in wanted
        if not (
            pa.types.is_integer(schema.field(c).type)
            or pa.types.is_floating(schema.field(c).type)
            or pa.types.is_boolean(schema.field(c).type)
        )
    ]
    if not_numeric:
        c = not_numeric[0]
        kind = schema.field(c).type
        kind = "text" if pa.types.is_string(kind) or pa.types.is_large_string(kind) else kind
        raise DataError(
            f"data: column {c!r} is {kind}, not numeric; list the numeric "
            "columns in data.features.columns (categorical encoding is not implemented yet)"
        )
    return wanted


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


def prepare_data(spec: JobSpec, preprocessor: Preprocessor | None = None) -> PreparedData:
    """Run the data stage of a validated spec on the connected Ray cluster.

    With ``preprocessor`` (a fitted one, from a run directory) nothing is refitted.

    Raises:
        DataError: the source is missing, or its columns are not what the spec says.
    """
    data = spec.data
    ds, info = read_source(data)
    schema = ds.schema()
    if schema is None:
        raise DataError(f"data.source: {data.source.type} source produced no rows")
    arrow = schema.base_schema if isinstance(schema.base_schema, pa.Schema) else None
    names = list(schema.names)
    if data.label not in names:
        raise DataError(f"data.label: no column {data.label!r} in the data; columns: {', '.join(names)}")

    feature_columns = None
    if info.tensor_shape is None:
        if arrow is None:
            arrow = pa.schema([(n, pa.from_numpy_dtype(np.dtype(t))) for n, t in zip(names, schema.types)])
        feature_columns = _feature_columns(spec, arrow)

    # One pass over the source adds a content hash; the materialized result is read by
    # the key scan below and by every split, so the source is read only once.
    hashed = ds.map_batches(add_hash, batch_format="numpy").materialize()
    rule, counts = plan_splits(hashed, data.split, data.label, spec.seed, data.task)
    for name, n in counts["rows"].items():
        if n == 0:
            raise DataError(f"data.split: the {name} split is empty; use more data or a larger fraction")
    classes = counts["classes"]
    if classes is not None and len(classes) < 2:
        raise DataError(f"data.label: classification needs 2 or more classes, found {classes}")

    fit = partial(
        fit_preprocessor,
        task=data.task,
        label=data.label,
        feature_columns=feature_columns,
        tensor_shape=info.tensor_shape,
        image_shape=data.image.shape if data.image else None,
        scaling=data.features.numeric,
        classes=classes,
    )
    preprocessor = preprocessor or fit(take_split(hashed, rule, "train"))
    datasets = {
        name: take_split(hashed, rule, name).map_batches(preprocessor, batch_format="numpy")
        for name in SPLITS
    }
    cached = _should_cache(data.cache, counts["rows"], preprocessor.input_shape)
    for name in cached:
        datasets[name] = datasets[name].materialize()
    report = {
        "source": data.source.model_dump(mode="json"),
        "rows": sum(counts["rows"].values()),
        "fingerprint": counts["fingerprint"],
        "split": {"method": data.split.method, "seed": spec.seed, "rows": counts["rows"]}
        | ({"folds": counts["folds"]} if "folds" in counts else {}),
        "class_counts": counts["class_counts"],
        "input_shape": preprocessor.input_shape,
        "feature_columns": feature_columns,
        "cached_splits": cached,
    }
    log.info("data: %d rows → train %d, val %d, test %d", report["rows"], *counts["rows"].values())
    return PreparedData(datasets, preprocessor, report, spec, hashed, rule, fit)


def fold_datasets(prepared: PreparedData, fold: int) -> tuple[ray.data.Dataset, ray.data.Dataset]:
    """The preprocessed (train, val) datasets of fold ``fold`` of a k-fold split.

    val holds the rows of the fold, train the other non-test rows; the test split is in
    neither. The preprocessing is refitted on this fold's train rows (same input shape
    and classes as ``prepared.preprocessor``), so no fold sees its val rows in a fit.

    Raises:
        DataError: the spec's split is not kfold, or ``fold`` is not in 0..k-1.
    """
    assert prepared.rows is not None and prepared.rule is not None and prepared.refit is not None
    train_raw, val_raw = take_fold(prepared.rows, prepared.rule, fold)
    pre = prepared.refit(train_raw)
    return (
        train_raw.map_batches(pre, batch_format="numpy"),
        val_raw.map_batches(pre, batch_format="numpy"),
    )
