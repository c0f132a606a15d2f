"""Row cleaning on Ray Data, each step counting what it changed.

Steps, in order: ``parse`` (values of numeric columns that are not numbers: the row is
counted and dropped, or rejected with the row named), ``dedupe`` (exact duplicates),
``missing`` (drop the row, or fill: mean, median, most frequent, constant), ``outliers``
(z-score or IQR rule on numeric columns: drop the row or clip the value).

Nothing is collected to one process but small keys and statistics: each row carries its
content hash and a random row id; the driver gathers (hash, row id, flags) — 8-byte
numbers — finds the few repeated hashes and the row ids to drop, and the rows are
filtered where they are. Statistics (moments, quantile sketches, value counts) are
computed per block and merged here. Cleaning statistics are taken over all rows that
reach the step (before the split): cleaning repairs the data set; features are fitted on
the train split only (see :mod:`raydl.data.preprocess`).
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
import pandas as pd
import ray

from raydl.data.split import HASH_COLUMN, row_hashes
from raydl.errors import DataError
from raydl.spec import CleanSpec

log = logging.getLogger(__name__)

ROW_ID = "_rid"  # a random 63-bit id per row, fixed once the rows are materialized
BAD = "_bad"  # why a row could not be parsed ("" when it could)
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
SKETCH_K = 800  # KLL sketch size: exact below ~k values per column, ~0.35% rank error above


@dataclass
class Cleaned:
    """The cleaned rows (with the hash column) and what each step did."""

    rows: ray.data.Dataset
    steps: list[dict[str, Any]] = field(default_factory=list)
    missing: dict[str, int] = field(default_factory=dict)
    duplicates: int = 0
    outliers: dict[str, int] = field(default_factory=dict)
    fill_values: dict[str, Any] = field(default_factory=dict)


# ------------------------------------------------------------------ statistics
def _sketch():
    from datasketches import kll_doubles_sketch

    return kll_doubles_sketch(SKETCH_K)


def _block_stats(
    batch: dict[str, np.ndarray], columns: list[str], counts: list[str]
) -> dict[str, np.ndarray]:
    """Per column: n, sum, sum of squares, a serialized quantile sketch (finite values);
    for ``counts`` columns also their value counts. One row per block."""
    out: dict[str, Any] = {}
    for c in columns:
        v = np.asarray(batch[c], np.float64)
        v = v[np.isfinite(v)]
        sk = _sketch()
        if len(v):
            sk.update(v)
        out[f"{c}/n"] = np.array([len(v)])
        out[f"{c}/s"] = np.array([v.sum()])
        out[f"{c}/ss"] = np.array([(v**2).sum()])
        out[f"{c}/sk"] = np.array([sk.serialize()], dtype=object)
    for c in counts:
        vc = pd.Series(batch[c]).dropna().value_counts()
        out[f"{c}/vc"] = np.array([dict(zip(vc.index.tolist(), vc.tolist()))], dtype=object)
    return out


@dataclass
class ColumnStats:
    n: int
    mean: float
    std: float
    sketch: Any  # a merged kll_doubles_sketch, or None when there are no values
    counts: Counter | None = None

    def quantiles(self, qs=QUANTILES) -> list[float]:
        return [float(v) for v in self.sketch.get_quantiles(list(qs))] if self.n else [float("nan")] * len(qs)

    def describe(self, bins: int = 20) -> dict[str, Any]:
        """mean, std, min, max, quantiles and a histogram: the report's (and drift's) form."""
        if not self.n:
            return {"count": 0}
        lo, hi = float(self.sketch.get_min_value()), float(self.sketch.get_max_value())
        edges = np.linspace(lo, hi, bins + 1) if hi > lo else np.array([lo, lo + 1.0])
        cdf = np.asarray(self.sketch.get_cdf(edges[1:-1].tolist()))  # P(X < edge) ... and 1.0
        mass = np.diff(np.concatenate([[0.0], cdf[:-1], [1.0]]))
        return {
            "count": self.n,
            "mean": self.mean,
            "std": self.std,
            "min": lo,
            "max": hi,
            "quantiles": {str(q): v for q, v in zip(QUANTILES, self.quantiles())},
            "histogram": {"edges": edges.tolist(), "counts": np.rint(mass * self.n).astype(int).tolist()},
        }


def column_stats(
    ds: ray.data.Dataset, columns: list[str], counts: list[str] | None = None
) -> dict[str, ColumnStats]:
    """Moments and a quantile sketch per numeric column (value counts for ``counts``
    columns), in one distributed pass; missing and non-finite values are left out."""
    counts = counts or []
    if not columns and not counts:
        return {}
    from datasketches import kll_doubles_sketch

    parts = ds.map_batches(
        partial(_block_stats, columns=columns, counts=counts), batch_format="numpy", batch_size=None
    ).take_all()
    stats: dict[str, ColumnStats] = {}
    for c in columns:
        n = sum(int(p[f"{c}/n"]) for p in parts)
        s = sum(float(p[f"{c}/s"]) for p in parts)
        ss = sum(float(p[f"{c}/ss"]) for p in parts)
        sk = _sketch()
        for p in parts:
            sk.merge(kll_doubles_sketch.deserialize(p[f"{c}/sk"]))
        mean = s / n if n else float("nan")
        std = float(np.sqrt(max(ss / n - mean**2, 0.0))) if n else float("nan")
        stats[c] = ColumnStats(n, mean, std, sk)
    for c in counts:
        total: Counter = Counter()
        for p in parts:
            total.update(p[f"{c}/vc"])
        if c in stats:
            stats[c].counts = total
        else:
            stats[c] = ColumnStats(sum(total.values()), float("nan"), float("nan"), None, total)
    return stats


# ---------------------------------------------------------------------- parse
def numeric_looking(values: pd.Series, share: float = 0.9) -> bool:
    """Whether a text column is really numeric with a few bad values: at least ``share``
    of its non-empty values parse as numbers."""
    v = values.dropna().astype(str).str.strip()
    v = v[v != ""]
    return len(v) > 0 and pd.to_numeric(v, errors="coerce").notna().mean() >= share


def _parse(batch: dict[str, np.ndarray], numeric: list[str]) -> dict[str, np.ndarray]:
    """Numeric columns as float64 (unparseable values become NaN and are named in
    ``_bad``), a content hash and a random row id per row."""
    n = len(next(iter(batch.values())))
    bad = np.full(n, "", dtype=object)
    for c in numeric:
        raw = batch[c]
        if raw.dtype.kind in "iufb":
            batch[c] = raw.astype(np.float64)
            continue
        text = pd.Series(raw, dtype=object)
        parsed = pd.to_numeric(text, errors="coerce").to_numpy(np.float64)
        given = text.notna().to_numpy() & (text.astype(str).str.strip() != "").to_numpy()
        for i in np.flatnonzero(given & np.isnan(parsed)):
            bad[i] += f"{c}={text.iloc[i]!r} "
        batch[c] = parsed
    batch[BAD] = bad.astype(str)
    batch[HASH_COLUMN] = row_hashes({k: v for k, v in batch.items() if k != BAD}).view(np.int64)
    batch[ROW_ID] = np.random.default_rng().integers(0, 2**63 - 1, size=n, dtype=np.int64)
    return batch


def _keys(batch: dict[str, np.ndarray], columns: list[str]) -> dict[str, np.ndarray]:
    """The small per-row keys the driver plans with: hash, row id, bad flag and a
    bitmask of the ``columns`` that are missing."""
    mask = np.zeros(len(batch[ROW_ID]), dtype=np.int64)
    for i, c in enumerate(columns):
        mask |= pd.isna(pd.Series(batch[c])).to_numpy().astype(np.int64) << i
    return {
        HASH_COLUMN: batch[HASH_COLUMN],
        ROW_ID: batch[ROW_ID],
        "bad": batch[BAD] != "",
        "missing": mask,
    }


def _name_row(batch: dict[str, np.ndarray], i: int) -> str:
    shown = {k: v[i] for k, v in batch.items() if k not in (HASH_COLUMN, ROW_ID, BAD) and np.ndim(v[i]) == 0}
    return ", ".join(f"{k}={_plain(v)!r}" for k, v in shown.items())


def _plain(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


def _bad_rows(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    idx = np.flatnonzero(batch[BAD] != "")
    return {
        "why": batch[BAD][idx],
        "row": np.array([_name_row(batch, int(i)) for i in idx], dtype=object),
    }


# --------------------------------------------------------------------- apply
def _filter(batch: dict[str, np.ndarray], drop_ids: frozenset, drop_bad: bool) -> dict[str, np.ndarray]:
    keep = ~np.isin(batch[ROW_ID], np.fromiter(drop_ids, np.int64, len(drop_ids)))
    if drop_bad:
        keep &= batch[BAD] == ""
    return {k: v[keep] for k, v in batch.items()}


def _bounds(stats: ColumnStats, method: str, threshold: float) -> tuple[float, float]:
    if method == "zscore":
        return stats.mean - threshold * stats.std, stats.mean + threshold * stats.std
    q1, q3 = (float(v) for v in stats.sketch.get_quantiles([0.25, 0.75]))
    return q1 - threshold * (q3 - q1), q3 + threshold * (q3 - q1)


def _outlier_flags(batch, bounds: dict[str, tuple[float, float]]) -> dict[str, np.ndarray]:
    """Per column, the number of values outside its bounds; ``_any``: rows with one or more."""
    out = {c: (batch[c] < lo) | (batch[c] > hi) for c, (lo, hi) in bounds.items()}
    any_ = np.logical_or.reduce(list(out.values())) if out else np.zeros(len(batch[ROW_ID]), bool)
    return {c: np.asarray([v.sum()]) for c, v in out.items()} | {"_any": np.asarray([any_.sum()])}


def _drop_outliers(batch, bounds: dict[str, tuple[float, float]], clip: bool) -> dict[str, np.ndarray]:
    keep = np.ones(len(batch[ROW_ID]), dtype=bool)
    for c, (lo, hi) in bounds.items():
        if clip:
            v = batch[c]
            batch[c] = np.where(np.isnan(v), v, np.clip(v, lo, hi))
        else:
            keep &= ~((batch[c] < lo) | (batch[c] > hi))  # NaN compares False: kept
    return {k: v[keep] for k, v in batch.items()}


def _fill(batch, values: dict[str, Any], drop: list[str]) -> dict[str, np.ndarray]:
    keep = np.ones(len(batch[ROW_ID]), dtype=bool)
    for c in drop:
        keep &= ~pd.isna(pd.Series(batch[c])).to_numpy()
    for c, value in values.items():
        col = pd.Series(batch[c])
        batch[c] = col.fillna(value).to_numpy(dtype=batch[c].dtype if batch[c].dtype.kind == "f" else object)
    return {k: v[keep] for k, v in batch.items()}


def _strip(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {k: v for k, v in batch.items() if k not in (ROW_ID, BAD)}


# ---------------------------------------------------------------------- clean
def strategies(spec: CleanSpec, columns: list[str]) -> dict[str, str]:
    """The missing-value strategy of each column (one for all, or per column)."""
    if isinstance(spec.missing, str):
        return {c: spec.missing for c in columns}
    unknown = [c for c in spec.missing if c not in columns]
    if unknown:
        raise DataError(
            f"data.clean.missing: no feature column {unknown[0]!r}; columns: {', '.join(columns)}"
        )
    return {c: spec.missing.get(c, "error") for c in columns}


def clean(ds: ray.data.Dataset, spec: CleanSpec, numeric: list[str], categorical: list[str]) -> Cleaned:
    """Run the cleaning steps over ``ds`` and return the hashed rows (lazy over one
    materialized pass, so every later read sees the same rows).

    Args:
        ds: the raw rows.
        spec: what to clean.
        numeric: columns parsed as numbers (outliers apply to these).
        categorical: other feature columns (missing values apply to these too).

    Raises:
        DataError: a row cannot be parsed and ``unparseable: reject`` (the row is named),
            or a column has missing values and its strategy is ``error``.
    """
    rows = ds.map_batches(partial(_parse, numeric=numeric), batch_format="numpy").materialize()
    features = numeric + categorical
    keys = rows.map_batches(partial(_keys, columns=features), batch_format="numpy").to_pandas()
    n_in = len(keys)
    result = Cleaned(rows)

    # -- parse: never silently dropped
    bad = keys["bad"].to_numpy()
    n_bad = int(bad.sum())
    if n_bad:
        examples = rows.map_batches(_bad_rows, batch_format="numpy").take(3)
        if spec.unparseable == "reject":
            first = examples[0]
            raise DataError(
                f"data: {n_bad} row(s) cannot be parsed; the first: {first['why'].strip()} in row "
                f"({first['row']}); fix the data or set data.clean.unparseable: report to drop them"
            )
        log.warning("data: dropped %d unparseable rows, e.g. %s", n_bad, examples[0]["why"])
    result.steps.append(
        {
            "name": "parse",
            "rows_in": n_in,
            "rows_out": n_in - n_bad,
            "changed": {
                "unparseable_rows": n_bad,
                "examples": [f"{e['why'].strip()} in row ({e['row']})" for e in (examples if n_bad else [])],
            },
        }
    )
    good = keys[~bad]

    # -- dedupe: gather only (hash, row id); the repeated hashes are few
    drop_ids: set[int] = set()
    dup = good[HASH_COLUMN].duplicated(keep=False)
    if dup.any():
        repeated = good[dup].sort_values([HASH_COLUMN, ROW_ID])
        extra = repeated[HASH_COLUMN].duplicated(keep="first")  # all but one copy of each
        result.duplicates = int(extra.sum())
        if spec.dedupe:
            drop_ids = set(repeated.loc[extra, ROW_ID].tolist())
    n = len(good) - len(drop_ids)
    if spec.dedupe:
        result.steps.append(
            {
                "name": "dedupe",
                "rows_in": len(good),
                "rows_out": n,
                "changed": {"duplicates": len(drop_ids)},
            }
        )
    kept = good[~good[ROW_ID].isin(drop_ids)]
    rows = rows.map_batches(
        partial(_filter, drop_ids=frozenset(drop_ids), drop_bad=True), batch_format="numpy"
    )

    # -- missing: count per column over the rows that reach this step
    mask = kept["missing"].to_numpy()
    result.missing = {c: int(((mask >> i) & 1).sum()) for i, c in enumerate(features)}
    how = strategies(spec, features)
    errors = [c for c in features if how[c] == "error" and result.missing[c]]
    if errors:
        raise DataError(
            "data: missing values in "
            + ", ".join(f"{c} ({result.missing[c]})" for c in errors)
            + "; set data.clean.missing to drop, mean, median, most_frequent or constant"
        )
    drop_cols = [c for c in features if how[c] == "drop" and result.missing[c]]
    drop_bits = sum(1 << features.index(c) for c in drop_cols)
    n_drop = int(((mask & drop_bits) != 0).sum())

    # -- outliers: bounds from the rows that survive the earlier steps (missing left out)
    outlier_cols = [c for c in (spec.outliers.columns or numeric)] if spec.outliers else []
    if spec.outliers:
        unknown = [c for c in outlier_cols if c not in numeric]
        if unknown:
            raise DataError(
                f"data.clean.outliers.columns: {unknown[0]!r} is not a numeric feature column; "
                f"numeric: {', '.join(numeric)}"
            )
    fill_cols = [
        c for c in features if how[c] in ("mean", "median", "most_frequent", "constant") and result.missing[c]
    ]

    base = (
        rows.map_batches(partial(_fill, values={}, drop=drop_cols), batch_format="numpy")
        if drop_cols
        else rows
    )
    if spec.outliers:
        o = spec.outliers
        threshold = o.threshold if o.threshold is not None else (3.0 if o.method == "zscore" else 1.5)
        stats = column_stats(base, outlier_cols)
        bounds = {c: _bounds(stats[c], o.method, threshold) for c in outlier_cols if stats[c].n}
        flags = base.map_batches(
            partial(_outlier_flags, bounds=bounds), batch_format="numpy", batch_size=None
        )
        per_col = {c: 0 for c in outlier_cols}
        n_outlier_rows = 0
        for part in flags.take_all():
            n_outlier_rows += int(part["_any"])
            for c in bounds:
                per_col[c] += int(part[c])
        result.outliers = per_col
        base = base.map_batches(
            partial(_drop_outliers, bounds=bounds, clip=o.action == "clip"), batch_format="numpy"
        )
        outlier_step: dict[str, Any] = {
            "name": "outliers",
            "method": o.method,
            "threshold": threshold,
            "action": o.action,
            "bounds": {c: [float(lo), float(hi)] for c, (lo, hi) in bounds.items()},
        }

    # -- fill: statistics of the rows left after dropping (outliers out of the mean)
    if fill_cols:
        wants_counts = [c for c in fill_cols if how[c] == "most_frequent" or c in categorical]
        stats = column_stats(base, [c for c in fill_cols if c in numeric], wants_counts)
        for c in fill_cols:
            st = stats[c]
            if how[c] == "constant":
                value: Any = spec.fill_value if c in numeric else str(spec.fill_value)
            elif c in categorical or how[c] == "most_frequent":
                value = st.counts.most_common(1)[0][0] if st.counts else spec.fill_value
            elif how[c] == "mean":
                value = st.mean
            else:
                value = float(st.sketch.get_quantiles([0.5])[0])
            result.fill_values[c] = _plain(value)
        base = base.map_batches(partial(_fill, values=result.fill_values, drop=[]), batch_format="numpy")
    if drop_cols or fill_cols:
        result.steps.append(
            {
                "name": "missing",
                "rows_in": n,
                "rows_out": n - n_drop,
                "changed": {
                    "dropped_rows": n_drop,
                    "filled": {c: result.missing[c] for c in fill_cols},
                    "fill_values": result.fill_values,
                },
            }
        )
        n -= n_drop
    # lazy over the materialized parse: the filters are fixed by row ids and bounds
    result.rows = base.map_batches(_strip, batch_format="numpy")
    if spec.outliers:
        n_out = n - n_outlier_rows if spec.outliers.action == "drop" else n
        outlier_step |= {
            "rows_in": n,
            "rows_out": n_out,
            "changed": {("clipped" if spec.outliers.action == "clip" else "flagged"): result.outliers}
            | ({"dropped_rows": n - n_out} if spec.outliers.action == "drop" else {}),
        }
        result.steps.append(outlier_step)
    return result
