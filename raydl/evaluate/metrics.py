"""Metrics: what training reports each epoch, and the test metrics chosen by name.

Test metrics are computed once, on the driver, over every test prediction
(scikit-learn), so they are exact whatever the number of workers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn import metrics as skm

from raydl.registry import Registry

_REPORTED = {
    "classification": ["train_loss", "train_accuracy", "val_loss", "val_accuracy"],
    "regression": ["train_loss", "val_loss", "val_mae", "val_rmse"],
}


def reported_metrics(task: str) -> list[str]:
    """The per-epoch metrics training reports for ``task`` (checkpoint/early-stop keys)."""
    return list(_REPORTED[task])


@dataclass(frozen=True)
class TestMetric:
    """``fn(y_true, y_pred, scores)``: scores are class probabilities (classification)."""

    fn: Callable[[np.ndarray, np.ndarray, np.ndarray | None], Any]
    tasks: tuple[str, ...]


TEST_METRICS: Registry[TestMetric] = Registry("metric")  # type: ignore[type-var]


def _register(name: str, fn, *tasks: str) -> None:
    TEST_METRICS.register(name)(TestMetric(fn, tasks))


def _roc_auc(y, p, scores):
    if scores is None:
        return None
    labels = np.arange(scores.shape[1])
    if len(np.unique(y)) < scores.shape[1]:
        return None  # undefined when a class is absent from the test split
    if scores.shape[1] == 2:
        return skm.roc_auc_score(y, scores[:, 1])
    return skm.roc_auc_score(y, scores, multi_class="ovr", average="macro", labels=labels)


C, R = "classification", "regression"
_register("accuracy", lambda y, p, s: skm.accuracy_score(y, p), C)
_register("precision_macro", lambda y, p, s: skm.precision_score(y, p, average="macro", zero_division=0), C)
_register("recall_macro", lambda y, p, s: skm.recall_score(y, p, average="macro", zero_division=0), C)
_register("f1_macro", lambda y, p, s: skm.f1_score(y, p, average="macro", zero_division=0), C)
_register("roc_auc", _roc_auc, C)
_register("mse", lambda y, p, s: skm.mean_squared_error(y, p), R)
_register("rmse", lambda y, p, s: float(np.sqrt(skm.mean_squared_error(y, p))), R)
_register("mae", lambda y, p, s: skm.mean_absolute_error(y, p), R)
_register("r2", lambda y, p, s: skm.r2_score(y, p), R)

DEFAULT_METRICS = {
    C: ["accuracy", "precision_macro", "recall_macro", "f1_macro", "roc_auc"],
    R: ["mse", "rmse", "mae", "r2"],
}


def compute_test_metrics(
    task: str,
    y_true: np.ndarray,
    y_pred: np.ndarray,
    scores: np.ndarray | None,
    names: list[str] | None,
    num_classes: int | None = None,
) -> dict[str, Any]:
    """The named metrics (default: all for the task); classification adds the confusion
    matrix and per-class precision/recall/F1."""
    out: dict[str, Any] = {"n": int(len(y_true))}
    for name in names or DEFAULT_METRICS[task]:
        value = TEST_METRICS.get(name).fn(y_true, y_pred, scores)
        out[name] = None if value is None else float(value)
    if task == C:
        labels = list(range(num_classes or int(max(y_true.max(), y_pred.max())) + 1))
        out["confusion_matrix"] = skm.confusion_matrix(y_true, y_pred, labels=labels).tolist()
        p, r, f, support = skm.precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
        out["per_class"] = [
            {"precision": float(a), "recall": float(b), "f1": float(c), "support": int(d)}
            for a, b, c, d in zip(p, r, f, support)
        ]
    return out
