"""What each column of a source is, for the data stage: numeric or categorical features,
a text or an image column, the label, the row id — from the spec and the source's schema."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
import pyarrow as pa
import ray

from raydl.data.images import CHANNELS_TO_MODE
from raydl.data.sources import SourceInfo
from raydl.errors import DataError
from raydl.spec import JobSpec


@dataclass(frozen=True)
class Columns:
    """What each column of the raw rows is, for parsing: numeric and categorical
    features, a text or image column, the label (None for a language model), the row
    id column (kept out of the content hash), and the task."""

    numeric: list[str] = field(default_factory=list)
    categorical: list[str] = field(default_factory=list)
    text: str | None = None
    image: str | None = None
    label: str | None = None
    task: str = "classification"
    row_id: str | None = None

    @property
    def gappy(self) -> list[str]:
        """The feature columns whose gaps ``data.clean.missing`` decides about."""
        return self.numeric + self.categorical + ([self.text] if self.text else [])


def numeric_looking(values: pd.Series, share: float = 0.9) -> bool:
    """Whether a text column is really numeric with a few bad values: at least ``share``
    of its non-empty values parse as numbers."""
    v = values.dropna().astype(str).str.strip()
    v = v[v != ""]
    return len(v) > 0 and pd.to_numeric(v, errors="coerce").notna().mean() >= share


def _is_number(t: pa.DataType) -> bool:
    return pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t)


def _feature_columns(
    spec: JobSpec, ds: ray.data.Dataset, schema: pa.Schema, row_id: str | None
) -> tuple[list[str], list[str]]:
    """The (numeric, categorical) feature columns: all but the label, the split column and
    the row id unless ``data.features.columns`` lists them. A text column whose values
    are nearly all numbers is numeric with a few unparseable values (cleaning names them).

    Raises:
        DataError: a listed column does not exist, or a text column is found and
            categorical encoding is off.
    """
    label = spec.data.label
    names = list(schema.names)
    split_column = spec.data.split.column if spec.data.split.method in ("time", "group") else None
    wanted = spec.data.features.columns or [c for c in names if c not in (label, split_column, row_id)]
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


def column_kinds(spec: JobSpec, ds: ray.data.Dataset, info: SourceInfo) -> Columns:
    """What each column of the source is.

    Raises:
        DataError: the label, text or feature columns are not in the data.
    """
    data = spec.data
    schema = ds.schema()
    if schema is None:
        raise DataError(f"data.source: {data.source.type} source produced no rows")
    arrow = schema.base_schema if isinstance(schema.base_schema, pa.Schema) else None
    names = list(schema.names)
    language_model = data.task == "language_modeling"  # token ids only: no label column
    if not language_model and data.label not in names:
        raise DataError(f"data.label: no column {data.label!r} in the data; columns: {', '.join(names)}")
    cols = Columns(label=None if language_model else data.label, task=data.task, row_id=info.row_id)
    if data.text is not None:
        _check_text_column(data.text.column, names, arrow)
        return replace(cols, text=data.text.column)
    if info.image_column is not None:
        return replace(cols, image=info.image_column)
    if info.tensor_shape is not None:
        return cols
    if arrow is None:
        arrow = pa.schema(
            [
                (n, t if isinstance(t, pa.DataType) else pa.from_numpy_dtype(np.dtype(t)))
                for n, t in zip(names, schema.types)
            ]
        )
    numeric, categorical = _feature_columns(spec, ds, arrow, info.row_id)
    return replace(cols, numeric=numeric, categorical=categorical)


def image_mode(spec: JobSpec) -> tuple[str, tuple[int, int]]:
    """The colour mode (L or RGB) and (height, width) images decode to (``data.image``)."""
    if spec.data.image is None:
        return "L", (1, 1)
    channels, height, width = spec.data.image.shape
    if channels not in CHANNELS_TO_MODE:
        raise DataError(f"data.image.shape: images decode to 1 (gray) or 3 (RGB) channels, got {channels}")
    return CHANNELS_TO_MODE[channels], (height, width)
