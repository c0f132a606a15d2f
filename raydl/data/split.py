"""Train/val/test splits that depend only on row content and the seed.

Every row gets a 64-bit content hash (``_h``). A split is decided by the hash mixed with
the seed, so it does not depend on block order, partitioning or the number of nodes;
exact duplicates always land in the same split, so they cannot leak from train to test.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import pandas as pd
import ray

from raydl.spec import SplitSpec

HASH_COLUMN = "_h"
SPLITS = ("train", "val", "test")  # split codes 0, 1, 2


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


@dataclass(frozen=True)
class SplitRule:
    """Which split a row belongs to, from its hash and label alone.

    A row with seeded uniform number ``u`` in stratum ``s`` is test when
    ``u < test_cut[s]``, else val when ``u < val_cut[s]``, else train. Strata are the
    classes (stratified classification), target quantile bins (stratified regression)
    or one stratum (random). ``strata`` holds the sorted class values or the bin edges.
    """

    seed: int
    label: str
    kind: str  # "classes" | "bins" | "none"
    strata: list[Any]
    test_cut: list[float]
    val_cut: list[float]

    def codes(self, hashes: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """0 train, 1 val, 2 test per row."""
        u = _uniform(hashes.view(np.uint64), self.seed)
        s = _stratum(self.kind, self.strata, labels)
        test_cut, val_cut = np.asarray(self.test_cut)[s], np.asarray(self.val_cut)[s]
        return np.where(u < test_cut, 2, np.where(u < val_cut, 1, 0)).astype(np.int8)


def _keys(batch: dict[str, np.ndarray], label: str) -> dict[str, np.ndarray]:
    return {HASH_COLUMN: batch[HASH_COLUMN], label: batch[label]}


def plan_splits(
    hashed: ray.data.Dataset, spec: SplitSpec, label: str, seed: int, task: str
) -> tuple[SplitRule, dict[str, Any]]:
    """Decide the split rule from the rows' (hash, label) keys, and count the result.

    Only two small columns reach the driver; the rows themselves stay in the object
    store and are routed by :func:`take_split` with the returned rule.

    Returns:
        The rule, and ``{"rows": {split: n}, "class_counts": {split: {label: n}} | None,
        "fingerprint": str}``.
    """
    keys = hashed.map_batches(partial(_keys, label=label), batch_format="numpy").to_pandas()
    h = keys[HASH_COLUMN].to_numpy(np.int64)
    y = keys[label].to_numpy()
    u = _uniform(h.view(np.uint64), seed)

    if spec.method == "stratified" and task == "classification":
        kind, strata = "classes", sorted(np.unique(y).tolist())
    elif spec.method == "stratified":
        edges = np.unique(np.quantile(y.astype(np.float64), np.linspace(0, 1, 11)[1:-1]))
        kind, strata = "bins", edges.tolist()
    else:
        kind, strata = "none", [0]
    s = _stratum(kind, strata, y)
    test_cut, val_cut = [], []
    for i in range(len(strata) + (1 if kind == "bins" else 0)):
        if kind == "none":
            test_cut.append(spec.test)
            val_cut.append(spec.test + spec.val)
            continue
        us = np.sort(u[s == i])
        n_test, n_val = int(round(len(us) * spec.test)), int(round(len(us) * spec.val))
        # a cut just above the k-th smallest number puts exactly k rows below it
        test_cut.append(float(us[n_test - 1]) + 1e-12 if n_test else 0.0)
        val_cut.append(float(us[n_test + n_val - 1]) + 1e-12 if n_test + n_val else 0.0)
    rule = SplitRule(seed, label, kind, strata, test_cut, val_cut)

    codes = rule.codes(h, y)
    rows = {name: int((codes == i).sum()) for i, name in enumerate(SPLITS)}
    class_counts = None
    if task == "classification":
        class_counts = {
            name: {str(k): int(v) for k, v in zip(*np.unique(y[codes == i], return_counts=True))}
            for i, name in enumerate(SPLITS)
        }
    total = int(h.view(np.uint64).sum(dtype=np.uint64))
    return rule, {
        "rows": rows,
        "class_counts": class_counts,
        "classes": sorted(np.unique(y).tolist()) if task == "classification" else None,
        "fingerprint": f"{len(h)}:{total:016x}",
    }


def _keep_split(batch: dict[str, np.ndarray], rule: SplitRule, code: int) -> dict[str, np.ndarray]:
    mask = rule.codes(batch[HASH_COLUMN], batch[rule.label]) == code
    return {k: v[mask] for k, v in batch.items() if k != HASH_COLUMN}


def take_split(hashed: ray.data.Dataset, rule: SplitRule, name: str) -> ray.data.Dataset:
    """The rows of one split (lazy), without the hash column."""
    return hashed.map_batches(partial(_keep_split, rule=rule, code=SPLITS.index(name)), batch_format="numpy")
