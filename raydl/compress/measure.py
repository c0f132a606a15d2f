"""One procedure for every candidate: the test metric through the Predictor, agreement
with the original model on the whole test split, parameters, file size, latency p50/p95
at batch 1 and throughput at batch ``batch_size``, with torch's and onnxruntime's
threads pinned (and written into the table)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from raydl.compress.candidates import Candidate
from raydl.data.preprocess import Preprocessor
from raydl.evaluate.metrics import compute_test_metrics
from raydl.predict import Predictor
from raydl.spec.compress import MeasureSpec


@contextlib.contextmanager
def pinned_threads(n: int) -> Iterator[None]:
    """torch's intra-op threads set to ``n`` for the block (onnxruntime's are set per
    session: :class:`~raydl.backends.OnnxBackend` ``threads``)."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def outputs(candidate: Candidate, pre: Preprocessor, x: np.ndarray) -> dict[str, np.ndarray]:
    """The Predictor's answer columns for preprocessed ``x``."""
    p = Predictor(pre, candidate.backend)
    return p.postprocess(p.forward(x))


def score(
    pre: Preprocessor, post: dict[str, np.ndarray], y: np.ndarray, metrics: list[str] | None
) -> dict[str, Any]:
    """Test metrics of answer columns against preprocessed targets ``y``."""
    if pre.task == "classification":
        return compute_test_metrics(
            pre.task, y, post["label_id"], post["probabilities"], metrics, pre.num_outputs
        )
    return compute_test_metrics(pre.task, pre.decode_target(y), post["value"], None, metrics)


def timings(candidate: Candidate, x: np.ndarray, m: MeasureSpec) -> dict[str, float]:
    """Latency p50/p95 (ms) at batch 1 over ``m.repetitions`` calls (each a different
    test row) and rows/s at batch ``m.batch_size``, after ``m.warmup`` untimed calls."""
    run = candidate.backend
    n = len(x)
    for i in range(m.warmup):
        run(x[i % n : i % n + 1])
    times = []
    for i in range(m.repetitions):
        row = x[i % n : i % n + 1]
        t0 = time.perf_counter()
        run(row)
        times.append(time.perf_counter() - t0)
    batch = np.resize(x, (m.batch_size, *x.shape[1:])) if n < m.batch_size else x[: m.batch_size]
    for _ in range(min(m.warmup, 3)):
        run(batch)
    t0 = time.perf_counter()
    for _ in range(m.throughput_batches):
        run(batch)
    elapsed = time.perf_counter() - t0
    ms = np.asarray(times) * 1e3
    return {
        "latency_p50_ms": float(np.percentile(ms, 50)),
        "latency_p95_ms": float(np.percentile(ms, 95)),
        "throughput_rows_s": m.batch_size * m.throughput_batches / elapsed,
    }


def measure(
    candidate: Candidate,
    pre: Preprocessor,
    x: np.ndarray,
    y: np.ndarray,
    metrics: list[str] | None,
    reference: dict[str, np.ndarray] | None,
    size_bytes: int,
    m: MeasureSpec,
) -> dict[str, Any]:
    """The candidate's row of the table. ``reference``: the original model's answer
    columns on the same ``x`` (agreement and max abs difference are against it)."""
    with pinned_threads(m.threads):
        post = outputs(candidate, pre, x)
        row: dict[str, Any] = {
            "name": candidate.name,
            "format": candidate.fmt,
            "params": candidate.params,
            "size_bytes": size_bytes,
        }
        row["metrics"] = {k: v for k, v in score(pre, post, y, metrics).items() if isinstance(v, int | float)}
        if reference is not None:
            key = "probabilities" if pre.task == "classification" else "value"
            row["max_abs_diff"] = float(np.max(np.abs(np.asarray(post[key], np.float64) - reference[key])))
            if pre.task == "classification":
                row["label_agreement"] = float(np.mean(post["label_id"] == reference["label_id"]))
        row |= timings(candidate, x, m)
    return row | candidate.notes
