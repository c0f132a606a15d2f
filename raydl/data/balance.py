"""Class balancing of the train split: random over- or undersampling, SMOTE, class weights.

Over- and undersampling run where the rows are: every row has a seeded number from its
content hash, and the driver picks, per class, how many copies a row gets (oversample:
each row ``q`` times, the rows with the lowest numbers once more) or which rows stay
(undersample: the lowest numbers), so the result has exactly the counts asked for and
the same rows for the same seed. SMOTE (imbalanced-learn) works in memory: the train
split's preprocessed features are gathered to the driver, resampled and handed back to
Ray Data. Class weights change no rows: they go to the loss through the Preprocessor.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import numpy as np
import ray

from raydl.data.columns import HASH_COLUMN, dataset_from_arrays
from raydl.data.split import _uniform
from raydl.errors import DataError

BALANCE_SEED_OFFSET = 7919  # another stream than the split's, from the same seed


def _keys(batch: dict[str, np.ndarray], label: str) -> dict[str, np.ndarray]:
    return {HASH_COLUMN: batch[HASH_COLUMN], "y": batch[label]}


def _cut(u: np.ndarray, k: int) -> float:
    """A number with exactly ``k`` of ``u`` (distinct) below it."""
    if k <= 0:
        return 0.0
    s = np.sort(u)
    return float(s[k - 1] + s[k]) / 2 if k < len(s) else 1.0


def _resample(
    batch: dict[str, np.ndarray], label: str, seed: int, plan: dict[Any, tuple[int, float]]
) -> dict[str, np.ndarray]:
    """Each row of class c: ``q`` copies, and one more when its number is below ``cut``."""
    u = _uniform(batch[HASH_COLUMN].view(np.uint64), seed)
    y = batch[label]
    reps = np.zeros(len(y), dtype=np.int64)
    for c, (q, cut) in plan.items():
        here = y == c
        reps[here] = q + (u[here] < cut)
    idx = np.repeat(np.arange(len(y)), reps)
    out = {k: v[idx] for k, v in batch.items()}
    # copy j of a row gets its own hash (j = 0 keeps the row's), so that a seeded train
    # order spreads the copies instead of leaving them side by side in one batch
    copy = np.arange(len(idx)) - np.repeat(np.cumsum(reps) - reps, reps)
    with np.errstate(over="ignore"):
        spread = copy.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    out[HASH_COLUMN] = (out[HASH_COLUMN].view(np.uint64) ^ spread).view(np.int64)
    return out


def resample(
    train: ray.data.Dataset, method: str, label: str, seed: int
) -> tuple[ray.data.Dataset, dict[str, int], dict[str, int]]:
    """Random over- (to the largest class) or undersampling (to the smallest) of raw
    train rows that carry the hash column.

    Returns:
        The resampled rows (lazy), and the class counts before and after.
    """
    keys = train.map_batches(partial(_keys, label=label), batch_format="numpy").to_pandas()
    seed = seed + BALANCE_SEED_OFFSET
    u = _uniform(keys[HASH_COLUMN].to_numpy(np.int64).view(np.uint64), seed)
    y = keys["y"].to_numpy()
    classes, counts = np.unique(y, return_counts=True)
    target = int(counts.max() if method == "oversample" else counts.min())
    plan: dict[Any, tuple[int, float]] = {}
    for c, n in zip(classes.tolist(), counts.tolist()):
        q, extra = divmod(target, n)
        plan[c] = (q, _cut(u[y == c], extra))
    before = {str(c): int(n) for c, n in zip(classes, counts)}
    after = {str(c): target for c in classes}
    out = train.map_batches(partial(_resample, label=label, seed=seed, plan=plan), batch_format="numpy")
    return out, before, after


def smote(
    train: ray.data.Dataset, seed: int, k_neighbors: int = 5, id_columns: int = 0
) -> tuple[ray.data.Dataset, dict[str, int], dict[str, int]]:
    """SMOTE on preprocessed train rows ``{"x", "y"}`` (features gathered in memory). The
    last ``id_columns`` columns of ``x`` are categorical ids (for an embedding): they are
    resampled as categories (SMOTE-NC, or SMOTE-N when every column is one), never
    interpolated.

    Raises:
        DataError: a class has too few rows for the neighbours SMOTE needs.
    """
    from imblearn.over_sampling import SMOTE, SMOTEN, SMOTENC

    batches = list(train.iter_batches(batch_format="numpy", batch_size=None))
    x = np.concatenate([b["x"] for b in batches])
    y = np.concatenate([b["y"] for b in batches])
    shape = x.shape[1:]
    classes, counts = np.unique(y, return_counts=True)
    if counts.min() < 2:
        raise DataError(f"data.balance: smote needs 2 or more train rows of every class, got {counts.min()}")
    k = min(k_neighbors, int(counts.min()) - 1)
    flat = x.reshape(len(x), -1)
    width = flat.shape[1]
    if id_columns == 0:
        sampler = SMOTE(random_state=seed, k_neighbors=k)
    elif id_columns == width:
        sampler = SMOTEN(random_state=seed, k_neighbors=k)
    else:
        ids = list(range(width - id_columns, width))
        sampler = SMOTENC(categorical_features=ids, random_state=seed, k_neighbors=k)
    xr, yr = sampler.fit_resample(flat, y)
    before = {str(c): int(n) for c, n in zip(classes, counts)}
    after = {str(c): int(n) for c, n in zip(*np.unique(yr, return_counts=True))}
    # imbalanced-learn appends the synthetic rows class by class: put them in a seeded order
    order = np.random.default_rng(seed).permutation(len(xr))
    xr, yr = xr[order], yr[order]
    out = dataset_from_arrays(
        {"x": xr.reshape((len(xr), *shape)).astype(np.float32), "y": yr.astype(y.dtype)}
    )
    return out, before, after


def class_weights(counts: dict[str, int], classes: list[Any]) -> list[float]:
    """Weights ``n / (C * n_c)`` by class id (the index in ``classes``): a rare class
    weighs more, and the mean weight over the rows is 1."""
    n = sum(counts.values())
    return [n / (len(classes) * counts[str(c)]) if counts.get(str(c)) else 0.0 for c in classes]
