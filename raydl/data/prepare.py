"""The data stage: source → splits → preprocessing fitted on train → streaming datasets.

Returns Ray Datasets of rows ``{"x": float32 array, "y": label}`` for train, val and
test; nothing is collected to the driver but small statistics.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import ray

from raydl.data.preprocess import Preprocessor, fit_preprocessor
from raydl.data.sources import read_source
from raydl.data.split import SPLITS, add_hash, plan_splits, take_split
from raydl.data.text import fit_text_preprocessor
from raydl.errors import DataError
from raydl.spec import JobSpec

log = logging.getLogger(__name__)


@dataclass
class PreparedData:
    datasets: dict[str, ray.data.Dataset]
    preprocessor: Preprocessor
    report: dict[str, Any]


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
    if data.text is not None:
        _check_text_column(data.text.column, names, arrow)
    elif info.tensor_shape is None:
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

    if preprocessor is None and data.text is not None:
        preprocessor = fit_text_preprocessor(
            take_split(hashed, rule, "train"),
            text=data.text,
            task=data.task,
            label=data.label,
            classes=classes,
        )
    preprocessor = preprocessor or fit_preprocessor(
        take_split(hashed, rule, "train"),
        task=data.task,
        label=data.label,
        feature_columns=feature_columns,
        tensor_shape=info.tensor_shape,
        image_shape=data.image.shape if data.image else None,
        scaling=data.features.numeric,
        classes=classes,
    )
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
        "split": {"method": data.split.method, "seed": spec.seed, "rows": counts["rows"]},
        "class_counts": counts["class_counts"],
        "input_shape": preprocessor.input_shape,
        "feature_columns": feature_columns,
        "cached_splits": cached,
    }
    log.info("data: %d rows → train %d, val %d, test %d", report["rows"], *counts["rows"].values())
    return PreparedData(datasets, preprocessor, report)
