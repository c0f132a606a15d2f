"""Error analysis of test predictions: the most confused class pairs and the worst-predicted
examples (by their position in the test split, with their scores)."""

from __future__ import annotations

from typing import Any

import numpy as np


def confused_pairs(confusion: np.ndarray, classes: list[str], top: int = 5) -> list[dict[str, Any]]:
    """Off-diagonal cells of the confusion matrix, largest first (true → predicted)."""
    cm = np.asarray(confusion)
    off = [(int(cm[i, j]), i, j) for i in range(len(cm)) for j in range(len(cm)) if i != j and cm[i, j] > 0]
    off.sort(key=lambda t: (-t[0], t[1], t[2]))
    totals = cm.sum(1)
    return [
        {"true": classes[i], "predicted": classes[j], "count": n, "share_of_true": n / max(int(totals[i]), 1)}
        for n, i, j in off[:top]
    ]


def worst_examples(
    task: str,
    y: np.ndarray,
    y_pred: np.ndarray,
    scores: np.ndarray | None,
    classes: list[str] | None = None,
    top: int = 10,
    ids: np.ndarray | None = None,
) -> list[dict[str, Any]]:
    """Classification: the rows whose true class got the lowest probability; regression:
    the largest absolute errors. ``id`` is the row's position in the test split;
    ``row_id`` its name in the source (``ids``: a file, an id column), when there is one."""
    name = (lambda i: {"row_id": _plain(ids[i])}) if ids is not None else (lambda i: {})
    if task == "classification":
        assert scores is not None and classes is not None
        p_true = scores[np.arange(len(y)), y.astype(np.int64)]
        order = np.argsort(p_true, kind="stable")[:top]
        return [
            {
                "id": int(i),
                **name(i),
                "true": classes[int(y[i])],
                "predicted": classes[int(y_pred[i])],
                "p_true": float(p_true[i]),
                "p_predicted": float(scores[i, int(y_pred[i])]),
            }
            for i in order
        ]
    err = np.abs(np.asarray(y_pred, dtype=np.float64) - np.asarray(y, dtype=np.float64))
    order = np.argsort(-err, kind="stable")[:top]
    return [
        {
            "id": int(i),
            **name(i),
            "true": float(y[i]),
            "predicted": float(y_pred[i]),
            "abs_error": float(err[i]),
        }
        for i in order
    ]


def _plain(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


def pair_rows(
    pairs: list[dict[str, Any]], classes: list[str], y, y_pred, ids: np.ndarray | None, per_pair: int = 3
) -> None:
    """Add to each confused pair the first ``per_pair`` test rows it holds: ``rows`` (their
    positions in the test split) and ``row_ids`` (their names in the source, when it names them)."""
    index = {c: i for i, c in enumerate(classes)}
    y, y_pred = np.asarray(y).astype(np.int64), np.asarray(y_pred).astype(np.int64)
    for pair in pairs:
        hits = np.flatnonzero((y == index[pair["true"]]) & (y_pred == index[pair["predicted"]]))[:per_pair]
        pair["rows"] = [int(i) for i in hits]
        if ids is not None:
            pair["row_ids"] = [_plain(ids[i]) for i in hits]


def error_analysis(
    task: str, metrics: dict[str, Any], y, y_pred, scores, top: int = 10, ids: np.ndarray | None = None
) -> dict[str, Any]:
    out: dict[str, Any] = {"task": task}
    if task == "classification":
        classes = metrics["classes"]
        out["confused_pairs"] = confused_pairs(np.asarray(metrics["confusion_matrix"]), classes)
        pair_rows(out["confused_pairs"], classes, y, y_pred, ids)
        out["per_class"] = [{"class": c, **row} for c, row in zip(classes, metrics["per_class"])]
        out["worst"] = worst_examples(task, y, y_pred, scores, classes, top, ids)
    else:
        out["worst"] = worst_examples(task, y, y_pred, None, None, top, ids)
    return out
