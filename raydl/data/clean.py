"""Row cleaning on Ray Data, each step counting what it changed.

Row rules, in order, over every row read: ``subset`` (``data.source.limit`` with
``subset: random``: a seeded random choice of rows), ``parse`` (values of numeric columns
that are not numbers, images that do not decode: the row is counted and dropped, or
rejected with the row named), ``dedupe`` (exact duplicates), ``label`` (rows whose label
is a gap: dropped and counted, or refused), ``missing`` (rows with a gap in a column
whose strategy is ``drop``; a gap in an ``error`` column stops the run naming it). A gap
is a gap in every column kind — None, NaN, empty text — and counted as one.

What is *learnt* from the data is fitted on the train split only, after the split:
outlier bounds (:func:`~raydl.data.repair.outlier_bounds`; dropping the rows outside them is a row rule
applied to every split, clipping is a preprocessing step) and gap fill values
(:func:`~raydl.data.repair.fill_values`). Both go into the preprocessor, so a request is cleaned as
training's rows were.

Nothing is collected to one process but small keys and statistics: each row carries its
content hash and a random row id; the driver gathers (hash, row id, flags) — 8-byte
numbers — finds the few repeated hashes and the row ids to drop, and the rows are
filtered where they are.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
import pandas as pd
import ray

from raydl.data import images, rows
from raydl.data.columns import HASH_COLUMN
from raydl.data.kinds import Columns
from raydl.data.split import _uniform, row_hashes
from raydl.errors import DataError
from raydl.spec import CleanSpec

log = logging.getLogger(__name__)

ROW_ID = "_rid"  # a random 63-bit id per row, fixed once the rows are materialized
BAD = "_bad"  # why a row could not be parsed ("" when it could)
LABEL_GAP = "_label_gap"  # the row's label is a gap
SUBSET_SEED_OFFSET = 104729  # another stream than the split's and the balancing's
FILLS = ("mean", "median", "most_frequent", "constant")


@dataclass
class Cleaned:
    """The cleaned rows (with the hash column) and what each step did."""

    rows: ray.data.Dataset
    steps: list[dict[str, Any]] = field(default_factory=list)
    missing: dict[str, int] = field(default_factory=dict)
    duplicates: int = 0
    label_gaps: int = 0
    strategies: dict[str, str] = field(default_factory=dict)


# ---------------------------------------------------------------------- parse
def _parse(batch: dict[str, np.ndarray], cols: Columns, image_mode: str, image_size) -> dict[str, np.ndarray]:
    """Every column read by its kind (:mod:`raydl.data.rows`, as the preprocessor reads a
    request): numbers as float64, gaps as None/NaN; why a row cannot be used in ``_bad``
    (a value that is not a number, an image that does not decode); whether its label is
    a gap; then a content hash (without the row id column) and a random row id."""
    n = rows.batch_length(batch)
    bad = np.full(n, "", dtype=object)

    def flag(mask: np.ndarray, why) -> None:
        for i in np.flatnonzero(mask):
            bad[i] += why(i) + " "

    for c in cols.numeric:
        raw = batch[c]
        batch[c], _, wrong = rows.numbers(raw)
        flag(wrong, lambda i, c=c, raw=raw: f"{c}={_plain(raw[i])!r}")
    for c in cols.categorical:
        raw = batch[c]
        batch[c], _, wrong = rows.categories(raw)
        flag(wrong, lambda i, c=c, raw=raw: f"{c}={_plain(raw[i])!r}")
    if cols.text is not None:
        raw = batch[cols.text]
        batch[cols.text], _, wrong = rows.texts(raw)
        flag(wrong, lambda i, c=cols.text, raw=raw: f"{c}={_plain(raw[i])!r} (not text)")
    if cols.image is not None:
        for i, v in enumerate(batch[cols.image]):
            try:
                images.decode(v, image_mode, image_size)
            except images.ImageProblem as e:
                name = batch[cols.row_id][i] if cols.row_id in batch else f"image {i}"
                bad[i] += f"{name}: {e} "
    if cols.label is not None:
        raw = batch[cols.label]
        if cols.task == "regression":
            batch[cols.label], gap, wrong = rows.numbers(raw)
            flag(wrong, lambda i, c=cols.label, raw=raw: f"{c}={_plain(raw[i])!r}")
            batch[LABEL_GAP] = gap | wrong
        else:
            gap = rows.missing(raw)
            if gap.any() and raw.dtype.kind not in "fc":
                raw = raw.astype(object)
                raw[gap] = None
                batch[cols.label] = raw
            batch[LABEL_GAP] = gap
    batch[BAD] = bad.astype(str)
    skip = {BAD, LABEL_GAP, cols.row_id}
    batch[HASH_COLUMN] = row_hashes({k: v for k, v in batch.items() if k not in skip}).view(np.int64)
    batch[ROW_ID] = np.random.default_rng().integers(0, 2**63 - 1, size=n, dtype=np.int64)
    return batch


def _keys(batch: dict[str, np.ndarray], columns: list[str], label: str | None) -> dict[str, np.ndarray]:
    """The small per-row keys the driver plans with: hash, row id, bad flag, label gap
    flag, whether a float label is a whole number, and a bitmask of the ``columns`` that
    are gaps."""
    mask = np.zeros(len(batch[ROW_ID]), dtype=np.int64)
    for i, c in enumerate(columns):
        mask |= pd.isna(pd.Series(batch[c])).to_numpy().astype(np.int64) << i
    n = len(mask)
    y = np.asarray(batch[label]) if label is not None else None
    floats = y is not None and y.dtype.kind == "f"
    return {
        HASH_COLUMN: batch[HASH_COLUMN],
        ROW_ID: batch[ROW_ID],
        "bad": batch[BAD] != "",
        "label_gap": batch[LABEL_GAP] if LABEL_GAP in batch else np.zeros(n, bool),
        "whole": (y == np.round(y)) | np.isnan(y) if y is not None and floats else np.ones(n, bool),
        "float_label": np.full(n, floats),
        "missing": mask,
    }


def _name_row(batch: dict[str, np.ndarray], i: int, row_id: str | None = None) -> str:
    if row_id is not None and row_id in batch:
        return f"{row_id}={_plain(batch[row_id][i])!r}"
    hidden = (HASH_COLUMN, ROW_ID, BAD, LABEL_GAP)
    shown = {
        k: v[i]
        for k, v in batch.items()
        if k not in hidden and np.ndim(v[i]) == 0 and not isinstance(v[i], bytes)
    }
    return ", ".join(f"{k}={_plain(v)!r}" for k, v in shown.items())


def _plain(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


def _bad_rows(batch: dict[str, np.ndarray], row_id: str | None) -> dict[str, np.ndarray]:
    idx = np.flatnonzero(batch[BAD] != "")
    return {
        "why": batch[BAD][idx],
        "row": np.array([_name_row(batch, int(i), row_id) for i in idx], dtype=object),
    }


# --------------------------------------------------------------------- apply
def _filter(
    batch: dict[str, np.ndarray], ids: np.ndarray, keep: bool, drop_bad: bool, label_gaps: bool
) -> dict[str, np.ndarray]:
    """Rows whose id is (``keep``) or is not in ``ids``; without bad rows (``drop_bad``)
    and rows whose label is a gap (``label_gaps``)."""
    listed = np.isin(batch[ROW_ID], ids)
    ok = listed if keep else ~listed
    if drop_bad:
        ok &= batch[BAD] == ""
    if label_gaps and LABEL_GAP in batch:
        ok &= ~batch[LABEL_GAP]
    return {k: v[ok] for k, v in batch.items()}


def _drop_gaps(batch: dict[str, np.ndarray], columns: list[str]) -> dict[str, np.ndarray]:
    keep = np.ones(len(batch[ROW_ID]), dtype=bool)
    for c in columns:
        keep &= ~pd.isna(pd.Series(batch[c])).to_numpy()
    return {k: v[keep] for k, v in batch.items()}


def _finish(batch: dict[str, np.ndarray], label: str | None, whole_label: bool) -> dict[str, np.ndarray]:
    out = {k: v for k, v in batch.items() if k not in (ROW_ID, BAD, LABEL_GAP)}
    if whole_label and label is not None:  # a label column read as floats because of its gaps
        out[label] = np.asarray(out[label]).astype(np.int64)
    return out


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


def _subset_ids(keys: pd.DataFrame, limit: int, seed: int) -> np.ndarray:
    """The row ids of a seeded random choice of ``limit`` rows: the lowest numbers drawn
    from each row's content hash (another stream than the split's, so the subset is not
    the test split), ties broken by row id."""
    u = _uniform(keys[HASH_COLUMN].to_numpy(np.int64).view(np.uint64), seed + SUBSET_SEED_OFFSET)
    order = np.lexsort((keys[ROW_ID].to_numpy(), u))[:limit]
    return np.sort(keys[ROW_ID].to_numpy()[order])


def clean(
    ds: ray.data.Dataset,
    spec: CleanSpec,
    cols: Columns,
    *,
    subset: tuple[int, int] | None = None,
    missing_label: str = "drop",
    image_mode: str = "L",
    image_size: tuple[int, int] = (1, 1),
) -> Cleaned:
    """Run the row rules over ``ds`` and return the hashed rows (lazy over one
    materialized pass, so every later read sees the same rows).

    Args:
        ds: the raw rows.
        spec: what to clean.
        cols: what each column is.
        subset: ``(limit, seed)``: keep a seeded random choice of ``limit`` rows.
        missing_label: ``drop`` rows whose label is a gap (counted), or ``error``.
        image_mode, image_size: how images decode (the parse checks that they do).

    Raises:
        DataError: a row cannot be parsed and ``unparseable: reject`` (the row is named),
            a label is a gap and ``missing_label: error``, no labels at all, or a column
            has gaps and its strategy is ``error``.
    """
    parse = partial(_parse, cols=cols, image_mode=image_mode, image_size=image_size)
    parsed = ds.map_batches(parse, batch_format="numpy").materialize()
    features = cols.gappy
    keys = parsed.map_batches(
        partial(_keys, columns=features, label=cols.label), batch_format="numpy"
    ).to_pandas()
    result = Cleaned(parsed)
    keep_ids: np.ndarray | None = None

    # -- subset: a seeded random choice of rows, before anything is counted
    if subset is not None and subset[0] < len(keys):
        keep_ids = _subset_ids(keys, *subset)
        result.steps.append(
            {
                "name": "subset",
                "rows_in": len(keys),
                "rows_out": len(keep_ids),
                "changed": {"method": "random", "seed": subset[1]},
            }
        )
        keys = keys[keys[ROW_ID].isin(keep_ids)]
    n_in = len(keys)

    # -- parse: never silently dropped
    bad = keys["bad"].to_numpy()
    n_bad = int(bad.sum())
    examples: list[dict[str, Any]] = []
    if n_bad:
        rows_of = (
            parsed
            if keep_ids is None
            else parsed.map_batches(
                partial(_filter, ids=keep_ids, keep=True, drop_bad=False, label_gaps=False),
                batch_format="numpy",
            )
        )
        examples = rows_of.map_batches(partial(_bad_rows, row_id=cols.row_id), batch_format="numpy").take(3)
        first = examples[0]
        what = "image(s) cannot be decoded" if cols.image else "row(s) cannot be parsed"
        example = first["why"].strip() + ("" if cols.image else f" in row ({first['row']})")
        if spec.unparseable == "reject":
            raise DataError(
                f"data: {n_bad} {what}; the first: {example}; fix the data or set "
                "data.clean.unparseable: report to drop them"
            )
        kind = "undecodable images" if cols.image else "unparseable rows"
        log.warning("data: dropped %d %s, e.g. %s", n_bad, kind, example)
    result.steps.append(
        {
            "name": "parse",
            "rows_in": n_in,
            "rows_out": n_in - n_bad,
            "changed": {
                ("undecodable_images" if cols.image else "unparseable_rows"): n_bad,
                "examples": [
                    e["why"].strip() + ("" if cols.image else f" in row ({e['row']})") for e in examples
                ],
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
            {"name": "dedupe", "rows_in": len(good), "rows_out": n, "changed": {"duplicates": len(drop_ids)}}
        )
    kept = good[~good[ROW_ID].isin(drop_ids)]

    # -- label: a row whose label is a gap is never a class (nor a target of NaN)
    gap = kept["label_gap"].to_numpy()
    result.label_gaps = n_gaps = int(gap.sum())
    if cols.label is not None:
        if n_gaps == n and n:
            raise DataError(
                f"data.label: every row's label {cols.label!r} is a gap (empty or NaN: {n} rows); "
                "is data.label the right column?"
            )
        if n_gaps and missing_label == "error":
            raise DataError(
                f"data.label: {n_gaps} row(s) have no label {cols.label!r} (empty or NaN); drop them "
                "with data.clean.missing_label: drop, or fill in the labels"
            )
        if n_gaps:
            log.warning("data: dropped %d rows without a label %r (empty or NaN)", n_gaps, cols.label)
            result.steps.append(
                {"name": "label", "rows_in": n, "rows_out": n - n_gaps, "changed": {"no_label": n_gaps}}
            )
        n -= n_gaps
        kept = kept[~gap]
    whole_label = bool(cols.task == "classification" and kept["float_label"].any() and kept["whole"].all())

    # -- missing: count per column over the rows that reach this step
    mask = kept["missing"].to_numpy()
    result.missing = {c: int(((mask >> i) & 1).sum()) for i, c in enumerate(features)}
    how = result.strategies = strategies(spec, features)
    errors = [c for c in features if how[c] == "error" and result.missing[c]]
    if errors:
        raise DataError(
            "data: missing values in "
            + ", ".join(f"{c} ({result.missing[c]})" for c in errors)
            + "; set data.clean.missing to drop, mean, median, most_frequent or constant "
            "(a gap is None, NaN or empty text)"
        )
    drop_cols = [c for c in features if how[c] == "drop" and result.missing[c]]
    drop_bits = sum(1 << features.index(c) for c in drop_cols)
    n_drop = int(((mask & drop_bits) != 0).sum())
    filled = {c: result.missing[c] for c in features if how[c] in FILLS and result.missing[c]}
    if drop_cols or filled:
        result.steps.append(
            {
                "name": "missing",
                "rows_in": n,
                "rows_out": n - n_drop,
                "changed": {"dropped_rows": n_drop, "filled": filled},
            }
        )

    # lazy over the materialized parse: the filters are fixed by row ids
    out = parsed
    if keep_ids is not None:
        out = out.map_batches(
            partial(_filter, ids=keep_ids, keep=True, drop_bad=False, label_gaps=False), batch_format="numpy"
        )
    ids = np.fromiter(drop_ids, np.int64, len(drop_ids))
    out = out.map_batches(
        partial(_filter, ids=ids, keep=False, drop_bad=True, label_gaps=True), batch_format="numpy"
    )
    if drop_cols:
        out = out.map_batches(partial(_drop_gaps, columns=drop_cols), batch_format="numpy")
    finish = partial(_finish, label=cols.label, whole_label=whole_label)
    result.rows = out.map_batches(finish, batch_format="numpy")
    return result
