"""k-fold cross-validation folds over rows gathered on the driver: the one implementation
that ``evaluate.cross_validation`` and ``tune.cv`` share (scikit-learn's
``StratifiedKFold`` for classification, ``KFold`` otherwise, seeded by the spec)."""

from __future__ import annotations

from typing import Any

import numpy as np

Folds = list[tuple[np.ndarray, np.ndarray]]  # (train_idx, held_out_idx) per fold


def gather_rows(ds: Any) -> tuple[np.ndarray, np.ndarray]:
    """A preprocessed Ray Dataset's ``x`` and ``y`` as two arrays on the driver."""
    batches = list(ds.iter_batches(batch_size=4096, batch_format="numpy"))
    return np.concatenate([b["x"] for b in batches]), np.concatenate([b["y"] for b in batches])


def kfold_indices(
    y: np.ndarray, k: int, seed: int, *, stratified: bool, where: str, rows: str = "rows"
) -> Folds:
    """``(train_idx, held_out_idx)`` of ``k`` shuffled folds of the rows labelled ``y``;
    stratified folds keep each class's share in every fold.

    Args:
        where: the spec field that asked for the folds, for the error.
        rows: what the rows are (``non-test rows``, ``train rows``), for the error.

    Raises:
        DataError: stratified, and a class has fewer rows than folds.
    """
    from sklearn.model_selection import KFold, StratifiedKFold

    from raydl.errors import DataError

    if stratified:
        smallest = int(np.unique(y, return_counts=True)[1].min())
        if smallest < k:
            raise DataError(f"{where}: a class has only {smallest} {rows}, fewer than k={k} folds")
        return list(StratifiedKFold(k, shuffle=True, random_state=seed).split(y, y))
    return list(KFold(k, shuffle=True, random_state=seed).split(y))
