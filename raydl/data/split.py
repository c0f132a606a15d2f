"""Train/val/test splits that depend only on row content and the seed.

Every row gets a 64-bit content hash (``_h``). A split is decided by the hash mixed with
the seed, so it does not depend on block order, partitioning or the number of nodes;
exact duplicates always land in the same split, so they cannot leak from train to test.

Methods: ``random``; ``stratified`` (per class, or per target bin for regression);
``group`` (the seeded number comes from the group column's value, so a group is never
in two splits); ``time`` (ordered by a column: the latest rows are test, the ones before
them val, no shuffling across a cut); ``kfold`` (a stratified test split, then the other
rows cut into k folds that :func:`take_fold` hands out one at a time).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import ray

from raydl.data.columns import HASH_COLUMN
from raydl.errors import DataError
from raydl.spec import SplitSpec

if TYPE_CHECKING:
    from ray.data.dataset import MaterializedDataset

SPLITS = ("train", "val", "test")  # split codes 0, 1, 2
SPLIT_KEY = "_split_key"  # the time/group column, in the keys gathered to plan splits


def row_hashes(batch: dict[str, np.ndarray]) -> np.ndarray:
    """One uint64 content hash per row of a batch (all columns, in sorted name order)."""
    n = len(next(iter(batch.values())))
    scalar = {k: v for k, v in batch.items() if v.ndim == 1}
    h = (
        pd.util.hash_pandas_object(pd.DataFrame(scalar), index=False).to_numpy(np.uint64)
        if scalar
        else np.zeros(n, dtype=np.uint64)
    )
    for name in sorted(k for k, v in batch.items() if v.ndim > 1):
        arr = np.ascontiguousarray(batch[name])
        col = np.array(
            [int.from_bytes(hashlib.blake2b(r.tobytes(), digest_size=8).digest(), "little") for r in arr],
            dtype=np.uint64,
        )
        h = _mix(h ^ col)
    return h


def _mix(h: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer: spreads every input bit over the whole word."""
    with np.errstate(over="ignore"):
        h = h.astype(np.uint64)
        h = (h ^ (h >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        h = (h ^ (h >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return h ^ (h >> np.uint64(31))


def _uniform(h: np.ndarray, seed: int) -> np.ndarray:
    """A number in [0, 1) per row from its hash and the seed."""
    with np.errstate(over="ignore"):
        mixed = _mix(h.astype(np.uint64) ^ _mix(np.array([seed + 1], dtype=np.uint64)))
    return (mixed >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def add_hash(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    batch[HASH_COLUMN] = row_hashes(batch).view(np.int64)
    return batch


def _stratum(kind: str, strata: list[Any], labels: np.ndarray) -> np.ndarray:
    """The stratum index of each label (see :class:`SplitRule`)."""
    if kind == "classes":
        return np.searchsorted(np.asarray(strata), labels)
    if kind == "bins":
        return np.searchsorted(np.asarray(strata), labels.astype(np.float64), side="right")
    return np.zeros(len(labels), dtype=np.int64)


def _values(column: np.ndarray | None, method: str) -> np.ndarray:
    """The split column's values, which a time or group split cannot do without."""
    if column is None:
        raise DataError(f"data.split.column: the {method} split needs its column's values")
    return column


def group_hashes(values: np.ndarray) -> np.ndarray:
    """One uint64 hash per value of a group column: rows of a group share it."""
    return pd.util.hash_array(np.asarray(values, dtype=object)).astype(np.uint64)


def time_values(values: np.ndarray) -> np.ndarray:
    """A time column as float64 for ordering: numbers as they are, datetimes and
    date strings as nanoseconds since the epoch.

    Raises:
        DataError: a value is neither a number nor a date.
    """
    v = np.asarray(values)
    if v.dtype.kind in "iufb":
        return v.astype(np.float64)
    if v.dtype.kind == "M":
        return v.astype("datetime64[ns]").astype(np.int64).astype(np.float64)
    try:
        return pd.to_datetime(pd.Series(v), utc=True).astype("int64").to_numpy(np.float64)
    except (ValueError, TypeError) as e:
        raise DataError(f"data.split.column: cannot read the time column as numbers or dates: {e}") from None


@dataclass(frozen=True)
class SplitRule:
    """Which split a row belongs to, from its hash, label and split column alone.

    ``random``/``stratified``/``group``/``kfold``: a row (or, for ``group``, its whole
    group) gets a seeded uniform number ``u``; in stratum ``s`` it is test when
    ``u < test_cut[s]``, else val when ``u < val_cut[s]``, else train. Strata are the
    classes (stratified classification), target quantile bins (stratified regression)
    or one stratum. ``strata`` holds the sorted class values or the bin edges.

    ``kfold``: the non-test rows of stratum ``s`` are cut into ``k`` folds at
    ``fold_cut[s]`` (k-1 ascending values of ``u``); fold 0 is the val split of a plain
    run, and :func:`fold_codes` names every row's fold.

    ``time``: no hashing; the latest rows by ``column`` are test, the ones before them
    val: ``t >= test_cut[0]`` is test, ``t >= val_cut[0]`` val. Rows with equal times
    fall on the same side, so nothing is shuffled across a cut.
    """

    seed: int
    label: str
    kind: str  # "classes" | "bins" | "none" | "time"
    strata: list[Any]
    test_cut: list[float]
    val_cut: list[float]
    method: str = "random"
    column: str | None = None  # time or group column
    fold_cut: list[list[float]] = field(default_factory=list)

    def uniform(self, hashes: np.ndarray, column: np.ndarray | None = None) -> np.ndarray:
        h = group_hashes(_values(column, "group")) if self.method == "group" else hashes.view(np.uint64)
        return _uniform(h, self.seed)

    def codes(self, hashes: np.ndarray, labels: np.ndarray, column: np.ndarray | None = None) -> np.ndarray:
        """0 train, 1 val, 2 test per row; ``column`` is the time/group column's values."""
        if self.kind == "time":
            t = time_values(_values(column, "time"))
            return np.where(t >= self.test_cut[0], 2, np.where(t >= self.val_cut[0], 1, 0)).astype(np.int8)
        u = self.uniform(hashes, column)
        s = _stratum(self.kind, self.strata, labels)
        test_cut, val_cut = np.asarray(self.test_cut)[s], np.asarray(self.val_cut)[s]
        return np.where(u < test_cut, 2, np.where(u < val_cut, 1, 0)).astype(np.int8)

    def fold_codes(
        self, hashes: np.ndarray, labels: np.ndarray, column: np.ndarray | None = None
    ) -> np.ndarray:
        """The fold (0..k-1) of each non-test row; -1 for test rows (kfold only)."""
        u = self.uniform(hashes, column)
        s = _stratum(self.kind, self.strata, labels)
        folds = np.zeros(len(u), dtype=np.int64)
        for i, cuts in enumerate(self.fold_cut):
            here = s == i
            folds[here] = np.searchsorted(np.asarray(cuts), u[here], side="right")
        return np.where(u < np.asarray(self.test_cut)[s], -1, folds)

    @property
    def k(self) -> int:
        return len(self.fold_cut[0]) + 1 if self.fold_cut else 0


def _keys(batch: dict[str, np.ndarray], label: str, column: str | None) -> dict[str, np.ndarray]:
    keys = {HASH_COLUMN: batch[HASH_COLUMN], label: batch[label]}
    if column is not None:
        keys[SPLIT_KEY] = batch[column]
    return keys


def _cuts(u: np.ndarray, fractions: list[float]) -> list[float]:
    """Cut points in ``u`` so that the share of rows below the i-th cut is as close as
    rows sharing a ``u`` (a group, or exact duplicates) allow to ``sum(fractions[:i+1])``."""
    values, counts = np.unique(u, return_counts=True)
    cum = np.cumsum(counts)
    cuts = []
    for target in np.cumsum(fractions) * len(u):
        i = int(np.argmin(np.abs(cum - target)))  # the cut goes after value i ...
        if target < cum[0] / 2:  # ... or before every value
            cuts.append(0.0)
        else:
            upper = values[i + 1] if i + 1 < len(values) else 1.0
            cuts.append(float((values[i] + upper) / 2))
    return cuts


def plan_splits(
    hashed: ray.data.Dataset, spec: SplitSpec, label: str, seed: int, task: str
) -> tuple[SplitRule, dict[str, Any]]:
    """Decide the split rule from the rows' (hash, label, split column) keys, and count
    the result.

    Only these small columns reach the driver; the rows themselves stay in the object
    store and are routed by :func:`take_split` with the returned rule.

    Returns:
        The rule, and ``{"rows": {split: n}, "class_counts": {split: {label: n}} | None,
        "fingerprint": str}`` (plus ``"folds": [n per fold]`` for kfold).

    Raises:
        DataError: the split column is missing or unusable.
    """
    column = spec.column if spec.method in ("time", "group") else None
    if column is not None and column not in hashed.schema().names:
        raise DataError(f"data.split.column: no column {column!r} in the data")
    keys = hashed.map_batches(partial(_keys, label=label, column=column), batch_format="numpy").to_pandas()
    h = keys[HASH_COLUMN].to_numpy(np.int64)
    y = keys[label].to_numpy()
    col = keys[SPLIT_KEY].to_numpy() if column is not None else None

    stratified = spec.method in ("stratified", "kfold")
    if stratified and task == "classification":
        kind, strata = "classes", sorted(np.unique(y).tolist())
    elif stratified:
        edges = np.unique(np.quantile(y.astype(np.float64), np.linspace(0, 1, 11)[1:-1]))
        kind, strata = "bins", edges.tolist()
    elif spec.method == "time":
        kind, strata = "time", [0]
    else:
        kind, strata = "none", [0]

    test_cut: list[float] = []
    val_cut: list[float] = []
    fold_cut: list[list[float]] = []
    if kind == "time":
        t = np.sort(time_values(_values(col, "time")))
        n_train = len(t) - int(round(len(t) * spec.test)) - int(round(len(t) * spec.val))
        n_val = int(round(len(t) * spec.val))
        val_cut.append(float(t[min(n_train, len(t) - 1)]))
        test_cut.append(float(t[min(n_train + n_val, len(t) - 1)]))
    else:
        u = SplitRule(seed, label, kind, strata, [], [], spec.method, column).uniform(h, col)
        s = _stratum(kind, strata, y)
        for i in range(len(strata) + (1 if kind == "bins" else 0)):
            us = u[s == i]
            if spec.method == "kfold":
                assert spec.k is not None
                rest = (1 - spec.test) / spec.k
                cuts = _cuts(us, [spec.test] + [rest] * (spec.k - 1)) if len(us) else [0.0] * spec.k
                test_cut.append(cuts[0])
                val_cut.append(cuts[1])
                fold_cut.append(cuts[1:])
            else:
                cuts = _cuts(us, [spec.test, spec.val]) if len(us) else [0.0, 0.0]
                test_cut.append(cuts[0])
                val_cut.append(cuts[1])
    rule = SplitRule(seed, label, kind, strata, test_cut, val_cut, spec.method, column, fold_cut)
    return rule, _count(rule, h, y, col, task)


def count_splits(hashed: ray.data.Dataset, rule: SplitRule, task: str) -> dict[str, Any]:
    """The counts of :func:`plan_splits` for rows routed by an existing ``rule`` (after a
    row rule fitted on the train split dropped some)."""
    keys = hashed.map_batches(partial(_keys, label=rule.label, column=rule.column), batch_format="numpy")
    frame = keys.to_pandas()
    col = frame[SPLIT_KEY].to_numpy() if rule.column is not None else None
    return _count(rule, frame[HASH_COLUMN].to_numpy(np.int64), frame[rule.label].to_numpy(), col, task)


def _count(
    rule: SplitRule, h: np.ndarray, y: np.ndarray, col: np.ndarray | None, task: str
) -> dict[str, Any]:
    codes = rule.codes(h, y, col)
    rows = {name: int((codes == i).sum()) for i, name in enumerate(SPLITS)}
    class_counts = None
    if task == "classification":
        class_counts = {
            name: {str(k): int(v) for k, v in zip(*np.unique(y[codes == i], return_counts=True))}
            for i, name in enumerate(SPLITS)
        }
    total = int(h.view(np.uint64).sum(dtype=np.uint64))
    counts: dict[str, Any] = {
        "rows": rows,
        "class_counts": class_counts,
        "classes": sorted(np.unique(y).tolist()) if task == "classification" else None,
        "fingerprint": f"{len(h)}:{total:016x}",
    }
    if rule.fold_cut:
        folds = rule.fold_codes(h, y, col)
        counts["folds"] = [int((folds == f).sum()) for f in range(rule.k)]
    return counts


def _keep_split(
    batch: dict[str, np.ndarray], rule: SplitRule, code: int, keep_hash: bool
) -> dict[str, np.ndarray]:
    col = batch[rule.column] if rule.column else None
    mask = rule.codes(batch[HASH_COLUMN], batch[rule.label], col) == code
    return {k: v[mask] for k, v in batch.items() if keep_hash or k != HASH_COLUMN}


ORDER_COLUMN = "__raydl_order"


def _order_key(batch: dict[str, np.ndarray], seed: int) -> dict[str, np.ndarray]:
    batch[ORDER_COLUMN] = _uniform(batch[HASH_COLUMN].view(np.uint64), seed + 7919)
    return batch


ONE_TASK_SORT_BYTES = 256 * 1024 * 1024


def _sort_rows(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    order = np.argsort(batch[ORDER_COLUMN], kind="stable")
    return {k: v[order] for k, v in batch.items() if k != ORDER_COLUMN}


def seeded_order(rows: ray.data.Dataset, seed: int, *, cut_back: bool = True) -> ray.data.Dataset:
    """``rows`` (with the hash column) in a pseudo-random order that depends only on each
    row's content and the seed — not on file order or block layout — so a sorted source
    (a folder per class, a CSV sorted by label) does not reach training class by class,
    and the same data and seed give the same order.

    Rows that fit one block (``ONE_TASK_SORT_BYTES``) are sorted by one task; Ray Data's
    distributed sort (sampled boundaries, a map and a reduce stage) cost 4–10 s on 1,258
    digits rows on 2 cores, where one task takes milliseconds. The task gets every block
    through ``map_batches``' bundling (a batch of all the rows), not a ``repartition(1)``,
    whose all-to-all stage is a barrier of its own. Its one block is cut back into as many
    as the rows came in (:func:`cut_rows`), unless ``cut_back`` is false: a caller that
    cuts its own blocks next (:func:`even_blocks`) would cut twice. Larger splits get the
    distributed sort. Both give the same order."""
    keyed = rows.map_batches(partial(_order_key, seed=seed), batch_format="numpy").materialize()
    if keyed.size_bytes() > ONE_TASK_SORT_BYTES:
        return keyed.sort(ORDER_COLUMN).drop_columns([ORDER_COLUMN])
    blocks, n = max(1, keyed.num_blocks()), max(1, keyed.count())
    one = keyed.map_batches(_sort_rows, batch_size=n, batch_format="numpy")
    return cut_rows(one, n, blocks) if cut_back and blocks > 1 else one


EVEN_BLOCK_BYTES = 8 * 1024 * 1024


def even_blocks(
    ds: ray.data.Dataset, rows: int | None = None, row_bytes: float | None = None
) -> MaterializedDataset:
    """``ds`` materialized in blocks of about ``EVEN_BLOCK_BYTES``, rows in order (where
    ``ds`` keeps its order: ``preserve_order``, as a deterministic run's datasets do).

    How a training split reaches the workers depends on its blocks: Ray Data hands whole
    blocks to each worker, and a worker's shuffle buffer fills block by block. A sort's
    blocks differ from run to run (it samples its boundaries), so a reproducible run
    needs a layout that depends only on the rows: every block holds the same number of
    rows, the last one what is left (:func:`cut_rows`).

    The block count comes from the materialized size, so it takes a second pass to cut
    them. A caller that knows the rows and their size (``rows``, ``row_bytes``: those of
    another split preprocessed alike) has them cut in the pass that computes them; the
    count is checked against the size once there, and recut if the guess was off. Either
    way the blocks are the same."""
    if rows and row_bytes:
        guess = _even_count(rows * row_bytes, rows)
        cut = cut_rows(ds, rows, guess).materialize()
        if cut.count() == rows and _even_count(cut.size_bytes(), rows) == guess:
            return cut
    else:
        cut = ds.materialize()
    n = cut.count()
    return cut_rows(cut, n, _even_count(cut.size_bytes(), n)).materialize()


def cut_rows(ds: ray.data.Dataset, rows: int, blocks: int) -> ray.data.Dataset:
    """``ds`` (of ``rows`` rows) cut, in order, into blocks of ``ceil(rows / blocks)``
    rows, the last one what is left: at most ``blocks``, fewer where rows are few.

    A streaming repartition, cut as the rows pass, not ``repartition(blocks)``: that one
    is an all-to-all stage, a barrier whose split and reduce tasks took microseconds and
    the stage 0.1–1.5 s (30,000 Fashion-MNIST rows on 2 cores, benchmarks/README.md)."""
    return ds.repartition(target_num_rows_per_block=max(1, -(-rows // blocks)), strict=True)


def _even_count(size_bytes: float, rows: int) -> int:
    return int(min(max(1, -(-size_bytes // EVEN_BLOCK_BYTES)), max(rows, 1)))


def take_split(
    hashed: ray.data.Dataset, rule: SplitRule, name: str, keep_hash: bool = False
) -> ray.data.Dataset:
    """The rows of one split (lazy), without the hash column unless ``keep_hash``."""
    return hashed.map_batches(
        partial(_keep_split, rule=rule, code=SPLITS.index(name), keep_hash=keep_hash), batch_format="numpy"
    )


def _keep_fold(
    batch: dict[str, np.ndarray], rule: SplitRule, fold: int, inside: bool
) -> dict[str, np.ndarray]:
    col = batch[rule.column] if rule.column else None
    folds = rule.fold_codes(batch[HASH_COLUMN], batch[rule.label], col)
    mask = folds == fold if inside else (folds >= 0) & (folds != fold)
    return {k: v[mask] for k, v in batch.items() if not inside or k != HASH_COLUMN}


def take_fold(
    hashed: ray.data.Dataset, rule: SplitRule, fold: int
) -> tuple[ray.data.Dataset, ray.data.Dataset]:
    """The raw (train, val) rows of fold ``fold`` (lazy): val is the fold, train the
    other non-test rows (with the hash column, for balancing); test rows are in neither.

    Raises:
        DataError: the rule is not a k-fold rule, or ``fold`` is out of range.
    """
    if not rule.fold_cut:
        raise DataError(f"data.split.method: folds need method kfold, got {rule.method!r}")
    if not 0 <= fold < rule.k:
        raise DataError(f"fold: must be in 0..{rule.k - 1}, got {fold}")
    train = hashed.map_batches(partial(_keep_fold, rule=rule, fold=fold, inside=False), batch_format="numpy")
    val = hashed.map_batches(partial(_keep_fold, rule=rule, fold=fold, inside=True), batch_format="numpy")
    return train, val
