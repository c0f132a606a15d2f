"""Repairs learnt from the train split: the outlier rule's bounds and the values that fill
gaps. Both are statistics of the data, so they are fitted on train rows only (per fold
for cross-validation) and saved in the preprocessor; dropping the rows outside the bounds
is a row rule that every split goes through, counted in the data report."""

from __future__ import annotations

from collections import Counter
from functools import partial
from typing import Any

import numpy as np
import ray

from raydl.data import rows
from raydl.data.clean import FILLS, strategies
from raydl.data.kinds import Columns
from raydl.data.stats import column_stats
from raydl.errors import DataError
from raydl.spec import CleanSpec, OutlierSpec


def outlier_bounds(train: ray.data.Dataset, spec: OutlierSpec, numeric: list[str]) -> dict[str, list[float]]:
    """``{column: [low, high]}`` of the outlier rule, fitted on the train rows (gaps left
    out): mean ± threshold·std (z-score), or the quartiles ± threshold·IQR.

    Raises:
        DataError: a listed column is not a numeric feature.
    """
    columns = spec.columns or numeric
    unknown = [c for c in columns if c not in numeric]
    if unknown:
        raise DataError(
            f"data.clean.outliers.columns: {unknown[0]!r} is not a numeric feature column; "
            f"numeric: {', '.join(numeric)}"
        )
    threshold = outlier_threshold(spec)
    stats = column_stats(train, columns)
    bounds = {}
    for c in columns:
        st = stats[c]
        if not st.n:
            continue
        if spec.method == "zscore":
            lo, hi = st.mean - threshold * st.std, st.mean + threshold * st.std
        else:
            q1, q3 = (float(v) for v in st.sketch.get_quantiles([0.25, 0.75]))
            lo, hi = q1 - threshold * (q3 - q1), q3 + threshold * (q3 - q1)
        bounds[c] = [float(lo), float(hi)]
    return bounds


def outlier_threshold(spec: OutlierSpec) -> float:
    return spec.threshold if spec.threshold is not None else (3.0 if spec.method == "zscore" else 1.5)


def _outlier_flags(batch, bounds: dict[str, list[float]]) -> dict[str, np.ndarray]:
    """Per column, the number of values outside its bounds; ``_any``: rows with one or more."""
    out = {c: (batch[c] < lo) | (batch[c] > hi) for c, (lo, hi) in bounds.items()}
    n = rows.batch_length(batch)
    any_ = np.logical_or.reduce(list(out.values())) if out else np.zeros(n, bool)
    return {c: np.asarray([v.sum()]) for c, v in out.items()} | {"_any": np.asarray([any_.sum()])}


def count_outliers(ds: ray.data.Dataset, bounds: dict[str, list[float]]) -> tuple[dict[str, int], int]:
    """Values outside the bounds per column, and rows with one or more, over ``ds``."""
    per_col = {c: 0 for c in bounds}
    n_rows = 0
    flags = ds.map_batches(partial(_outlier_flags, bounds=bounds), batch_format="numpy", batch_size=None)
    for part in flags.take_all():
        n_rows += int(part["_any"])
        for c in bounds:
            per_col[c] += int(part[c])
    return per_col, n_rows


def _outside(batch, bounds: dict[str, list[float]]) -> dict[str, np.ndarray]:
    keep = np.ones(rows.batch_length(batch), dtype=bool)
    for c, (lo, hi) in bounds.items():
        keep &= ~((batch[c] < lo) | (batch[c] > hi))  # NaN compares False: kept
    return {k: v[keep] for k, v in batch.items()}


def drop_outliers(ds: ray.data.Dataset, bounds: dict[str, list[float]]) -> ray.data.Dataset:
    """``ds`` without the rows that have a value outside its column's bounds (lazy)."""
    return ds.map_batches(partial(_outside, bounds=bounds), batch_format="numpy")


def _clipped(batch, bounds: dict[str, list[float]]) -> dict[str, np.ndarray]:
    for c, (lo, hi) in bounds.items():
        v = batch[c]
        batch[c] = np.where(np.isnan(v), v, np.clip(v, lo, hi))
    return batch


def fill_values(
    train: ray.data.Dataset, spec: CleanSpec, cols: Columns, clip: dict[str, list[float]]
) -> dict[str, Any]:
    """The value that fills a gap, per feature column whose strategy is a fill, fitted on
    the train rows (clipped as the outlier rule says): mean or median (numbers), the most
    frequent value (categories and text; also what mean/median mean for them) or the
    constant ``fill_value``. Every such column gets one, gaps seen in training or not,
    so a request's gap is filled as a training row's would be."""
    how = strategies(spec, cols.gappy)
    wanted = [c for c in cols.gappy if how[c] in FILLS]
    if not wanted:
        return {}
    rows_ = train.map_batches(partial(_clipped, bounds=clip), batch_format="numpy") if clip else train
    numeric = [c for c in wanted if c in cols.numeric and how[c] in ("mean", "median")]
    counted = [c for c in wanted if how[c] == "most_frequent" or (c not in numeric and how[c] != "constant")]
    stats = column_stats(rows_, numeric, counted)
    values: dict[str, Any] = {}
    for c in wanted:
        if how[c] == "constant":
            value: Any = spec.fill_value if c in cols.numeric else str(spec.fill_value)
        elif c in counted:
            counts = stats[c].counts
            value = _top(counts) if counts else spec.fill_value
        elif how[c] == "mean":
            value = stats[c].mean
        else:
            value = float(stats[c].sketch.get_quantiles([0.5])[0]) if stats[c].n else spec.fill_value
        values[c] = value.item() if isinstance(value, np.generic) else value
    return values


def _top(counts: Counter) -> Any:
    """The most frequent value; ties go to the smallest, so the choice is the same on
    every run (value counts merge in any order)."""
    most = max(counts.values())
    return min(v for v, k in counts.items() if k == most)
