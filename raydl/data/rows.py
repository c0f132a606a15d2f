"""Raw rows, as the user's data holds them, turned into typed columns with their gaps and
bad values found.

Ray-free: the data stage's parse (through Ray Data's ``map_batches``) and the
:class:`~raydl.data.preprocess.Preprocessor` that the Predictor calls use these same
functions, so a value is read the same way when training and when serving. A gap is a
gap in every column kind: ``None``, NaN, NaT and text that is empty or only spaces.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

_CONTAINERS = (list, tuple, dict, set, np.ndarray)


def column_of(values: Any, n: int | None = None) -> np.ndarray:
    """A 1-D numpy array of ``values``; anything that is not a plain scalar column (lists,
    arrays, mixed types) becomes an object array holding one value per row."""
    if isinstance(values, np.ndarray) and values.ndim == 1:
        return values
    if isinstance(values, np.ndarray) and values.ndim > 1:  # a tensor column: one array per row
        out = np.empty(len(values), dtype=object)
        for i, v in enumerate(values):
            out[i] = v
        return out
    vals = list(values)
    out = np.empty(len(vals) if n is None else n, dtype=object)
    for i, v in enumerate(vals):
        out[i] = v
    kinds = {type(v) for v in vals}
    if kinds and kinds <= {int, float, bool, np.int64, np.float64, np.float32}:
        floats = kinds & {float, np.float64, np.float32}
        return np.asarray(vals, dtype=np.float64) if floats else np.asarray(vals)
    return out


def to_columns(rows: Any) -> tuple[dict[str, np.ndarray], int]:
    """Columns and the row count of what a user hands the Predictor: one dict (one row), a
    list of dicts, a pandas DataFrame, or a pyarrow Table / RecordBatch.

    A field absent from some dicts of a list is a gap (``None``) in those rows.

    Raises:
        TypeError: ``rows`` is none of these.
    """
    if isinstance(rows, dict):
        return {k: column_of([v]) for k, v in rows.items()}, 1
    if isinstance(rows, pd.DataFrame):
        return {str(c): column_of(rows[c].to_numpy()) for c in rows.columns}, len(rows)
    try:
        import pyarrow as pa
    except ImportError:  # pragma: no cover - pyarrow comes with raydl
        pa = None
    if pa is not None and isinstance(rows, pa.Table | pa.RecordBatch):
        return {name: _arrow_column(rows.column(name)) for name in rows.column_names}, rows.num_rows
    if isinstance(rows, list | tuple):
        if not all(isinstance(r, dict) for r in rows):
            bad = next(type(r).__name__ for r in rows if not isinstance(r, dict))
            raise TypeError(f"rows: a list of rows holds dicts (field → value), got a {bad}")
        names: dict[str, None] = {}
        for r in rows:
            names.update(dict.fromkeys(r))
        return {k: column_of([r.get(k) for r in rows]) for k in names}, len(rows)
    raise TypeError(
        f"rows: expected a dict (one row), a list of dicts, a pandas DataFrame or a pyarrow Table, "
        f"got {type(rows).__name__}"
    )


def _arrow_column(col: Any) -> np.ndarray:
    try:
        return column_of(col.to_numpy(zero_copy_only=False))
    except (NotImplementedError, TypeError, ValueError):  # extension types, nested lists
        return column_of(col.to_pylist())


def rename_columns(batch: dict[str, Any], mapping: dict[str, str]) -> dict[str, Any]:
    """A batch with its columns renamed from the source's own names to the spec's
    (``data.source.rename``); other columns keep their names. Where rows use both names
    (a list of request dicts), a row's value is the one it gives."""
    if not mapping:
        return batch
    out: dict[str, Any] = {}
    for k, v in batch.items():
        new = mapping.get(k, k)
        if new in out:  # both names: fill the gaps of one from the other
            old = column_of(out[new])
            v = column_of(v)
            v = np.where(missing(np.asarray(v)), old, v) if len(old) == len(v) else v
        out[new] = v
    return out


def batch_length(batch: dict[str, np.ndarray]) -> int:
    """Rows in a batch of columns (0 for a batch without columns)."""
    return len(next(iter(batch.values()))) if batch else 0


def missing(values: np.ndarray) -> np.ndarray:
    """Per value: is it a gap — None, NaN, NaT, or text that is empty or only spaces?"""
    v = np.asarray(values)
    if v.dtype.kind in "biu":
        return np.zeros(len(v), dtype=bool)
    if v.dtype.kind in "fc":
        return np.isnan(v)
    if v.dtype.kind in "mM":
        return np.isnat(v)
    if v.dtype.kind in "US":
        return np.char.strip(v.astype(str)) == ""
    out = pd.isna(v).astype(bool)
    for i in np.flatnonzero(~out):
        x = v[i]
        if isinstance(x, str | bytes) and not x.strip():
            out[i] = True
    return out


_FLOAT32_MAX = float(np.finfo(np.float32).max)


def numbers(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(float64 values, gaps, bad)``: gaps are NaN in the values; a bad value is one
    that was given but is not a finite number (text that does not parse, a list, inf) or
    is beyond float32's range (the model's input: it would become inf there)."""
    v = np.asarray(values)
    n = len(v)
    if v.dtype.kind in "biu":
        return v.astype(np.float64), np.zeros(n, bool), np.zeros(n, bool)
    if v.dtype.kind == "f":
        x = v.astype(np.float64)
        gaps = np.isnan(x)
        bad = ~gaps & ~(np.abs(x) <= _FLOAT32_MAX)
        x[bad] = np.nan
        return x, gaps, bad
    gaps = missing(v)
    x = np.full(n, np.nan)
    given = ~gaps
    if given.any():
        try:
            parsed = pd.to_numeric(pd.Series(v[given], dtype=object), errors="coerce")
            x[given] = parsed.to_numpy(np.float64, na_value=np.nan)
        except (TypeError, ValueError):  # lists, dicts: one value at a time
            x[given] = [_number(a) for a in v[given]]
    bad = given & ~(np.abs(x) <= _FLOAT32_MAX)
    x[bad] = np.nan
    return x, gaps, bad


def _number(value: Any) -> float:
    if isinstance(value, (*_CONTAINERS, bytes)):
        return np.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return np.nan


def categories(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(values as text, gaps, bad)``: gaps are None in the text; a bad value is a
    list, dict or bytes where one category was expected."""
    v = np.asarray(values)
    gaps = missing(v)
    out = np.empty(len(v), dtype=object)
    bad = np.zeros(len(v), bool)
    for i in np.flatnonzero(~gaps):
        x = v[i]
        if isinstance(x, (*_CONTAINERS, bytes)):
            bad[i] = True
        else:
            out[i] = x if isinstance(x, str) else str(x.item() if isinstance(x, np.generic) else x)
    return out, gaps, bad


def texts(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(texts, gaps, bad)``: a bad value is anything given that is not text."""
    v = np.asarray(values)
    gaps = missing(v)
    out = np.empty(len(v), dtype=object)
    bad = np.zeros(len(v), bool)
    for i in np.flatnonzero(~gaps):
        if isinstance(v[i], str):
            out[i] = v[i]
        else:
            bad[i] = True
    return out, gaps, bad


def integral(values: np.ndarray) -> bool:
    """Whether every value of a float column is a whole number (labels read as floats
    because the column had gaps: 1.0 is the class the data calls 1)."""
    v = np.asarray(values)
    return v.dtype.kind == "f" and bool(np.all(np.isfinite(v))) and bool(np.all(v == np.round(v)))
