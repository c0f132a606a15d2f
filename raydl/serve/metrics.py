"""Prometheus metrics of the serve stage, through Ray Serve's metrics API (exported with
Ray's own metrics on the node's metrics port, e.g. ``ray.init(_metrics_export_port=P)``;
each gets the deployment, replica and application tags from Serve), and one structured
log line per request — route, status, rows, milliseconds; never the payload."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

from ray.serve import metrics

log = logging.getLogger("raydl.serve.requests")

LATENCY_MS: list[float] = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000]
BATCH_SIZES: list[float] = [1, 2, 4, 8, 16, 32, 64, 128, 256]


def _keys(*names: str) -> Any:
    return tuple(names)  # Ray annotates tag_keys as tuple[str]: any length works


class ServeMetrics:
    """The replica's metrics, each labelled with the model's name and version."""

    def __init__(self, model: str, version: str) -> None:
        self.tags = {"model": model, "version": version}
        keys = ("model", "version")
        self.requests = metrics.Counter(
            "raydl_requests",
            description="Requests by route and HTTP status.",
            tag_keys=_keys(*keys, "route", "status"),
        )
        self.latency = metrics.Histogram(
            "raydl_request_latency_ms",
            description="Time to answer a request, in milliseconds.",
            boundaries=LATENCY_MS,
            tag_keys=_keys(*keys, "route"),
        )
        self.batch_size = metrics.Histogram(
            "raydl_batch_size",
            description="Requests answered by one model call.",
            boundaries=BATCH_SIZES,
            tag_keys=_keys(*keys),
        )
        self.predictions = metrics.Counter(
            "raydl_predictions", description="Answers by predicted class.", tag_keys=_keys(*keys, "label")
        )
        self.abstentions = metrics.Counter(
            "raydl_abstentions", description="Answers under the confidence threshold.", tag_keys=_keys(*keys)
        )
        self.drift = metrics.Gauge(
            "raydl_drift_score",
            description="Largest PSI of the replica's drift window.",
            tag_keys=_keys(*keys),
        )
        self.drifting = metrics.Gauge(
            "raydl_drift_flag", description="1 when the replica's window has drifted.", tag_keys=_keys(*keys)
        )

    def request(self, route: str, status: int, ms: float, rows: int | None = None, **extra: Any) -> None:
        self.requests.inc(tags={**self.tags, "route": route, "status": str(status)})
        self.latency.observe(ms, tags={**self.tags, "route": route})
        log.info(
            json.dumps(
                {
                    "event": "request",
                    "route": route,
                    "status": status,
                    "ms": round(ms, 3),
                    "rows": rows,
                    **self.tags,
                    **extra,
                }
            )
        )

    def batch(self, n: int) -> None:
        self.batch_size.observe(n, tags=self.tags)

    def answered(self, labels: Sequence[Any], abstained: int) -> None:
        for label in labels:
            self.predictions.inc(tags={**self.tags, "label": str(label)})
        if abstained:
            self.abstentions.inc(abstained, tags=self.tags)

    def drift_score(self, score: float, flag: bool) -> None:
        self.drift.set(score, tags=self.tags)
        self.drifting.set(1.0 if flag else 0.0, tags=self.tags)
