"""Metrics: the metrics chosen by name, as torchmetrics objects, and what training
reports each epoch.

Every named metric is a torchmetrics ``Metric``: each worker updates it with its own
shard's predictions and ``compute()`` syncs the states over the process group, so the
value covers every row whatever the number of workers (and however unevenly the rows
are split), not rank 0's shard. The test evaluation (:mod:`raydl.evaluate.metrics`)
uses the same metrics in one process. Which tasks a metric applies to, and which
metrics an epoch reports, are facts of :mod:`raydl.catalog` (the spec checks use them).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torchmetrics
import torchmetrics.classification as tmc
import torchmetrics.regression as tmr
from torchmetrics.text import Perplexity

from raydl.catalog import DEFAULT_METRICS, LM, METRICS, ML, C, R, in_loop_metrics, reported_metrics

__all__ = [
    "C",
    "DEFAULT_METRICS",
    "LM",
    "ML",
    "R",
    "TEST_METRICS",
    "ClassCounts",
    "EpochMetrics",
    "MetricDef",
    "MetricSet",
    "in_loop_metrics",
    "reported_metrics",
]


@dataclass(frozen=True)
class MetricDef:
    """``build(num_classes)`` makes the torchmetrics object; ``feed`` picks its inputs from
    ``(probs_or_values, target)``; ``post`` turns its result into JSON values. Its tasks
    and whether it is scalar are declared in :data:`raydl.catalog.METRICS`."""

    build: Callable[[int], torchmetrics.Metric]
    feed: Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]] = lambda p, t: (p, t)
    post: Callable[[torch.Tensor], Any] = lambda v: float(v)


TEST_METRICS = METRICS  # the metric family, under its name before the catalog


def _register(name: str, d: MetricDef) -> None:
    METRICS.register(name)(d)


def _list(v: torch.Tensor) -> list:
    return v.tolist()


def _mc(cls, average):
    return lambda n: cls(num_classes=n, average=average, zero_division=0)


for _avg in ("macro", "micro"):
    _register(f"precision_{_avg}", MetricDef(_mc(tmc.MulticlassPrecision, _avg)))
    _register(f"recall_{_avg}", MetricDef(_mc(tmc.MulticlassRecall, _avg)))
    _register(f"f1_{_avg}", MetricDef(_mc(tmc.MulticlassF1Score, _avg)))
for _name, _cls in (
    ("precision", tmc.MulticlassPrecision),
    ("recall", tmc.MulticlassRecall),
    ("f1", tmc.MulticlassF1Score),
):
    _register(f"{_name}_per_class", MetricDef(_mc(_cls, None), post=_list))

_register("accuracy", MetricDef(lambda n: tmc.MulticlassAccuracy(num_classes=n, average="micro")))
_register(
    "roc_auc",
    # binary: the positive class's score; more classes: one-vs-rest, macro average
    MetricDef(
        lambda n: tmc.BinaryAUROC() if n == 2 else tmc.MulticlassAUROC(num_classes=n, average="macro"),
        feed=lambda p, t: (p[:, 1], t) if p.shape[1] == 2 else (p, t),
    ),
)
_register(
    "confusion_matrix",
    MetricDef(lambda n: tmc.MulticlassConfusionMatrix(num_classes=n), post=_list),
)
# exp(mean cross-entropy); softmax(log p) = p, so feeding log-probabilities is exact
_register(
    "perplexity",
    MetricDef(
        lambda n: Perplexity(),
        feed=lambda p, t: (p.clamp_min(1e-12).log().unsqueeze(0), t.unsqueeze(0)),
    ),
)
_register("mse", MetricDef(lambda n: tmr.MeanSquaredError()))
_register("rmse", MetricDef(lambda n: tmr.MeanSquaredError(squared=False)))
_register("mae", MetricDef(lambda n: tmr.MeanAbsoluteError()))
_register("r2", MetricDef(lambda n: tmr.R2Score()))
# multi-label: probabilities [N, L], targets {0,1} [N, L], threshold 0.5
_register("hamming_loss", MetricDef(lambda n: tmc.MultilabelHammingDistance(num_labels=n, average="micro")))
_register("jaccard", MetricDef(lambda n: tmc.MultilabelJaccardIndex(num_labels=n, average="macro")))


class ClassCounts(torchmetrics.Metric):
    """Rows per class, summed over the workers."""

    counts: torch.Tensor  # a synced state (add_state)

    def __init__(self, num_classes: int):
        super().__init__()
        self.num_classes = num_classes
        self.add_state("counts", default=torch.zeros(num_classes, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, target: torch.Tensor) -> None:
        self.counts += torch.bincount(target, minlength=self.num_classes)

    def compute(self) -> torch.Tensor:
        return self.counts


class MetricSet:
    """Named metrics over predictions that arrive in batches, possibly on several workers.

    ``update(preds, target)``: class probabilities ``[B, C]`` and ids ``[B]``
    (classification), values ``[B]`` (regression) or label probabilities and {0,1}
    targets ``[B, L]`` (multi-label). ``compute()`` is collective under DDP: every rank
    must call it, in the same order, and every rank gets the global values.
    """

    def __init__(self, task: str, names: list[str], num_classes: int | None = None):
        self.task = task
        self.names = list(names)
        self.defs = {n: TEST_METRICS.get(n) for n in self.names}
        # float64 states: sums over many rows stay exact enough to match scikit-learn
        self.metrics = {n: d.build(num_classes or 0).set_dtype(torch.float64) for n, d in self.defs.items()}
        self._seen = None  # per-class row counts, to tell when ROC-AUC is undefined
        if task == C and "roc_auc" in self.names:
            self._seen = ClassCounts(num_classes or 0)

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        preds, target = preds.detach().double().cpu(), target.detach().cpu()
        target = target.long() if self.task in (C, ML) else target.double()
        for name, metric in self.metrics.items():
            metric.update(*self.defs[name].feed(preds, target))
        if self._seen is not None:
            self._seen.update(target)

    def compute(self) -> dict[str, Any]:
        out = {name: self.defs[name].post(metric.compute()) for name, metric in self.metrics.items()}
        if self._seen is not None and bool((self._seen.compute() == 0).any()):
            out["roc_auc"] = None  # undefined when a class is absent from the rows
        return out

    def reset(self) -> None:
        for metric in self.metrics.values():
            metric.reset()
        if self._seen is not None:
            self._seen.reset()


class EpochMetrics(MetricSet):
    """The val metrics of one epoch, fed the model's raw outputs batch by batch."""

    def __init__(self, task: str, extra: list[str] | None, num_outputs: int, target_scale: float = 1.0):
        super().__init__(task, in_loop_metrics(task, extra), num_outputs)
        self.target_scale = target_scale

    def observe(self, out: torch.Tensor, y: torch.Tensor) -> None:
        if self.task == C:
            self.update(torch.softmax(out.detach().float(), dim=-1), y)
        else:  # errors in the target's original units
            self.update(out.detach().float() * self.target_scale, y.float() * self.target_scale)

    def results(self, prefix: str = "val") -> dict[str, Any]:
        """The synced values as ``{prefix}_{name}``; resets for the next epoch."""
        values = self.compute()
        self.reset()
        return {f"{prefix}_{k}": v for k, v in values.items()}
