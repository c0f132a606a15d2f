"""Drift of live inputs against the training statistics the run saved, per replica.

Each replica keeps a rolling window of the last ``window`` rows it answered. The
reference is the train split as ``data_report.json`` describes it: per numeric feature its
quantile-sketch CDF at the histogram edges (``raydl.data.stats.ColumnStats.describe``),
and the train class counts. Scores:

- numeric feature: a one-sample Kolmogorov–Smirnov test (``scipy.stats.kstest``) of the
  window against the reference CDF (piecewise linear between the saved edges), and the
  PSI over the reference's histogram bins; it drifts when KS's p-value is below
  ``p_value``;
- predicted classes: the PSI of the window's predicted-class shares against the train
  class shares; they drift above ``psi``.

Ray-free: the deployment feeds it and serves :meth:`DriftMonitor.report` at ``GET /drift``.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats

EPS = 1e-4  # floor of a bin's share in PSI: an empty bin must not give log(0)


def psi(expected: np.ndarray, actual: np.ndarray) -> float:
    """Population stability index of two share vectors over the same bins."""
    e = np.clip(np.asarray(expected, np.float64), EPS, None)
    a = np.clip(np.asarray(actual, np.float64), EPS, None)
    e, a = e / e.sum(), a / a.sum()
    return float(np.sum((a - e) * np.log(a / e)))


@dataclass(frozen=True)
class NumericReference:
    """A numeric feature of the train split: histogram edges and the CDF at each edge."""

    edges: np.ndarray  # (B+1,)
    cdf: np.ndarray  # (B+1,), 0 at the first edge, 1 at the last

    @classmethod
    def from_describe(cls, described: Mapping[str, Any]) -> NumericReference | None:
        """From ``ColumnStats.describe()``'s histogram; None for a column with no values."""
        hist = described.get("histogram")
        if not hist or not described.get("count"):
            return None
        edges = np.asarray(hist["edges"], np.float64)
        counts = np.asarray(hist["counts"], np.float64)
        if len(edges) != len(counts) + 1 or counts.sum() <= 0:
            return None
        cdf = np.concatenate([[0.0], np.cumsum(counts) / counts.sum()])
        return cls(edges, cdf)

    def cdf_at(self, x: np.ndarray) -> np.ndarray:
        return np.interp(x, self.edges, self.cdf, left=0.0, right=1.0)

    def shares(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Reference and window shares over the reference's bins (outside values in the end bins)."""
        ref = np.diff(self.cdf)
        idx = np.clip(np.searchsorted(self.edges, x, side="right") - 1, 0, len(ref) - 1)
        live = np.bincount(idx, minlength=len(ref)).astype(np.float64)
        return ref, live / max(live.sum(), 1.0)


@dataclass(frozen=True)
class Reference:
    """What live traffic is compared with: numeric features and the train class shares."""

    numeric: dict[str, NumericReference] = field(default_factory=dict)
    classes: dict[str, float] = field(default_factory=dict)  # class (as str) → share of train rows

    @classmethod
    def from_report(cls, report: Mapping[str, Any], classes: Sequence[Any] | None = None) -> Reference:
        """From a run's ``data_report.json``: ``features`` (train, as the model sees them)
        and ``class_counts.train``."""
        numeric = {}
        for name, described in (report.get("features") or {}).items():
            ref = NumericReference.from_describe(described)
            if ref is not None:
                numeric[name] = ref
        counts = ((report.get("class_counts") or {}).get("train")) or {}
        total = float(sum(counts.values()))
        shares = {str(k): v / total for k, v in counts.items()} if total else {}
        if classes is not None and shares:
            shares = {str(c): shares.get(str(c), 0.0) for c in classes}
        return cls(numeric, shares)


class DriftMonitor:
    """A rolling window of live rows and their scores against a :class:`Reference`.

    Thread-safe: a replica's requests update it concurrently."""

    def __init__(self, reference: Reference, *, window: int = 500, p_value: float = 0.001, psi: float = 0.25):
        self.reference = reference
        self.window, self.p_value, self.psi_limit = window, p_value, psi
        self._numeric: dict[str, deque[float]] = {name: deque(maxlen=window) for name in reference.numeric}
        self._labels: deque[str] = deque(maxlen=window)
        self._lock = threading.Lock()

    def update(self, numeric: Mapping[str, Any], labels: Sequence[Any]) -> None:
        """Add answered rows: their numeric feature values (by feature name) and predicted labels."""
        with self._lock:
            for name, values in numeric.items():
                if name in self._numeric:
                    v = np.asarray(values, np.float64)
                    self._numeric[name].extend(v[np.isfinite(v)].tolist())
            self._labels.extend(str(label) for label in labels)

    def report(self) -> dict[str, Any]:
        """Per-feature scores, the predicted-class shift, the overall ``score`` (the largest
        PSI) and ``drift``: any feature or the classes drifted. Scores need at least a
        quarter of a window; before that ``ready`` is false and nothing drifts."""
        with self._lock:
            numeric = {k: np.asarray(v) for k, v in self._numeric.items()}
            labels = list(self._labels)
        least = max(20, self.window // 4)
        features: dict[str, Any] = {}
        for name, values in numeric.items():
            ref = self.reference.numeric[name]
            if len(values) < least:
                features[name] = {"rows": len(values), "ready": False, "drift": False}
                continue
            ks = stats.kstest(values, ref.cdf_at)
            features[name] = {
                "rows": len(values),
                "ready": True,
                "ks": float(ks.statistic),
                "p_value": float(ks.pvalue),
                "psi": psi(*ref.shares(values)),
                "drift": bool(ks.pvalue < self.p_value),
            }
        predictions: dict[str, Any] = {"rows": len(labels), "ready": False, "drift": False}
        if self.reference.classes and len(labels) >= least:
            names = list(self.reference.classes)
            seen = np.asarray([sum(1 for x in labels if x == c) for c in names], np.float64)
            score = psi(np.asarray([self.reference.classes[c] for c in names]), seen / max(seen.sum(), 1))
            predictions = {
                "rows": len(labels),
                "ready": True,
                "psi": score,
                "shares": dict(zip(names, (seen / max(seen.sum(), 1)).round(4).tolist())),
                "drift": bool(score > self.psi_limit),
            }
        scores = [f["psi"] for f in features.values() if f.get("ready")]
        scores += [predictions["psi"]] if predictions.get("ready") else []
        return {
            "window": self.window,
            "ready": any(f.get("ready") for f in features.values()) or predictions["ready"],
            "drift": any(f["drift"] for f in features.values()) or predictions["drift"],
            "score": max(scores) if scores else 0.0,
            "features": features,
            "predictions": predictions,
        }
