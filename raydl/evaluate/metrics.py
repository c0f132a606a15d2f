"""Test metrics: the named metrics (default: all for the task) over every test
prediction, in one process, with the same torchmetrics definitions that training
syncs over its workers (:mod:`raydl.train.metrics`)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from raydl.catalog import DEFAULT_METRICS, C

# names of raydl.train.metrics that lived here before the split, still importable from here
from raydl.train.metrics import (  # noqa: F401
    LM,
    ML,
    TEST_METRICS,
    ClassCounts,
    EpochMetrics,
    MetricDef,
    MetricSet,
    R,
    in_loop_metrics,
    reported_metrics,
)


def compute_test_metrics(
    task: str,
    y_true: np.ndarray,
    y_pred: np.ndarray,
    scores: np.ndarray | None,
    names: list[str] | None,
    num_classes: int | None = None,
) -> dict[str, Any]:
    """The named metrics (default: all for the task) over every test prediction;
    classification adds the confusion matrix and per-class precision/recall/F1."""
    names = list(names or DEFAULT_METRICS[task])
    if task == C:
        num_classes = num_classes or int(max(y_true.max(), y_pred.max())) + 1
        extra = ["confusion_matrix", "precision_per_class", "recall_per_class", "f1_per_class"]
        ms = MetricSet(task, names + [e for e in extra if e not in names], num_classes)
        ms.update(torch.as_tensor(scores), torch.as_tensor(y_true))
    else:
        ms = MetricSet(task, names, num_classes)
        ms.update(torch.as_tensor(np.asarray(y_pred, dtype=np.float64)), torch.as_tensor(y_true).float())
    values = ms.compute()
    out: dict[str, Any] = {"n": int(len(y_true))}
    out.update({n: values[n] for n in names})
    if task == C:
        cm = np.asarray(values["confusion_matrix"])
        out["confusion_matrix"] = cm.tolist()
        out["per_class"] = [
            {"precision": p, "recall": r, "f1": f, "support": int(s)}
            for p, r, f, s in zip(
                values["precision_per_class"], values["recall_per_class"], values["f1_per_class"], cm.sum(1)
            )
        ]
    return out
