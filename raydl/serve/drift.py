"""Drift of live inputs against the training statistics the run saved, per replica.

Each replica keeps a rolling window of the last ``window`` rows it answered. The
reference is the train split as ``data_report.json`` describes it: per numeric feature its
quantile-sketch CDF at the histogram edges (``raydl.data.stats.ColumnStats.describe``),
per categorical feature its rows per known value and of any other value
(``ColumnStats.describe_counts``), and the train class counts. Scores:

- numeric feature: a one-sample Kolmogorov–Smirnov test (``scipy.stats.kstest``) of the
  window against the reference CDF (piecewise linear between the saved edges), and the
  PSI over the reference's histogram bins; it drifts when KS's p-value is below
  ``p_value``;
- categorical feature: the PSI of the window's shares per known value, values the
  reference does not name in one ``other`` bucket, and a χ² goodness-of-fit test of the
  same counts (bins expected to hold under 5 rows pooled); it drifts above ``psi`` or
  when χ²'s p-value is below ``p_value``;
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

from raydl.data import rows

EPS = 1e-4  # floor of a bin's share in PSI and χ²: an empty bin (a value train never saw) stays finite
MIN_EXPECTED = 5.0  # χ² bins expected to hold fewer rows are pooled: the χ² approximation needs it


def psi(expected: np.ndarray, actual: np.ndarray) -> float:
    """Population stability index of two share vectors over the same bins."""
    e = np.clip(np.asarray(expected, np.float64), EPS, None)
    a = np.clip(np.asarray(actual, np.float64), EPS, None)
    e, a = e / e.sum(), a / a.sum()
    return float(np.sum((a - e) * np.log(a / e)))


def chi2(expected: np.ndarray, observed: np.ndarray) -> tuple[float, float]:
    """χ² goodness of fit of ``observed`` counts to ``expected`` shares over the same bins:
    ``(statistic, p_value)``. Bins expected to hold fewer than :data:`MIN_EXPECTED` rows
    are pooled into one (into the smallest other bin, if the pool is still that small);
    with one bin left there is nothing to test, ``(0.0, 1.0)``."""
    o = np.asarray(observed, np.float64)
    e = np.clip(np.asarray(expected, np.float64), EPS, None)
    e = e / e.sum() * o.sum()
    small = e < MIN_EXPECTED
    if small.any():
        pool_e, pool_o = e[small].sum(), o[small].sum()
        e, o = e[~small], o[~small]
        if pool_e < MIN_EXPECTED and len(e):
            j = int(np.argmin(e))
            e[j], o[j] = e[j] + pool_e, o[j] + pool_o
        else:
            e, o = np.append(e, pool_e), np.append(o, pool_o)
    if len(e) < 2:
        return 0.0, 1.0
    result = stats.chisquare(o, e)
    return float(result.statistic), float(result.pvalue)


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
class CategoryReference:
    """A categorical feature of the train split: the shares of its known values and, last,
    of any other value (values the report folded into ``other``; never any unseen one)."""

    values: tuple[str, ...]  # (K,)
    shares: np.ndarray  # (K+1,), summing to 1

    @classmethod
    def from_describe(cls, described: Mapping[str, Any]) -> CategoryReference | None:
        """From ``ColumnStats.describe_counts()``; None for a column with no values."""
        counts = described.get("counts") or {}
        other = float(described.get("other") or 0)
        total = float(sum(counts.values())) + other
        if not counts or total <= 0:
            return None
        shares = np.asarray([*counts.values(), other], np.float64) / total
        return cls(tuple(str(v) for v in counts), shares)

    def counts(self, x: Sequence[str]) -> np.ndarray:
        """Window rows per known value, then of any other value: (K+1,)."""
        index = {v: i for i, v in enumerate(self.values)}
        other = len(self.values)
        return np.bincount([index.get(v, other) for v in x], minlength=other + 1).astype(np.float64)


@dataclass(frozen=True)
class Reference:
    """What live traffic is compared with: numeric and categorical features and the train
    class shares."""

    numeric: dict[str, NumericReference] = field(default_factory=dict)
    classes: dict[str, float] = field(default_factory=dict)  # class (as str) → share of train rows
    categorical: dict[str, CategoryReference] = field(default_factory=dict)

    @classmethod
    def from_report(cls, report: Mapping[str, Any], classes: Sequence[Any] | None = None) -> Reference:
        """From a run's ``data_report.json``: ``features`` and ``category_counts`` (train,
        as the model sees them) and ``class_counts.train``. A report written before
        ``category_counts`` existed gives no categorical features."""
        numeric = {}
        for name, described in (report.get("features") or {}).items():
            ref = NumericReference.from_describe(described)
            if ref is not None:
                numeric[name] = ref
        categorical = {}
        for name, described in (report.get("category_counts") or {}).items():
            cat = CategoryReference.from_describe(described)
            if cat is not None:
                categorical[name] = cat
        counts = ((report.get("class_counts") or {}).get("train")) or {}
        total = float(sum(counts.values()))
        shares = {str(k): v / total for k, v in counts.items()} if total else {}
        if classes is not None and shares:
            shares = {str(c): shares.get(str(c), 0.0) for c in classes}
        return cls(numeric, shares, categorical)


class DriftMonitor:
    """A rolling window of live rows and their scores against a :class:`Reference`.

    Thread-safe: a replica's requests update it concurrently."""

    def __init__(self, reference: Reference, *, window: int = 500, p_value: float = 0.001, psi: float = 0.25):
        self.reference = reference
        self.window, self.p_value, self.psi_limit = window, p_value, psi
        self._numeric: dict[str, deque[float]] = {name: deque(maxlen=window) for name in reference.numeric}
        self._categorical: dict[str, deque[str]] = {
            name: deque(maxlen=window) for name in reference.categorical
        }
        self._labels: deque[str] = deque(maxlen=window)
        self._lock = threading.Lock()

    def update(
        self,
        numeric: Mapping[str, Any],
        labels: Sequence[Any],
        categorical: Mapping[str, Sequence[Any]] | None = None,
    ) -> None:
        """Add answered rows: their numeric and categorical feature values (by feature
        name; categories as the rows hold them, read as the preprocessor reads them) and
        predicted labels. Gaps and unusable values are left out."""
        parsed = {}
        for name, values in (categorical or {}).items():
            if name in self._categorical:
                v, gaps, bad = rows.categories(rows.column_of(values))
                parsed[name] = [str(x) for x in v[~(gaps | bad)]]
        with self._lock:
            for name, values in numeric.items():
                if name in self._numeric:
                    v = np.asarray(values, np.float64)
                    self._numeric[name].extend(v[np.isfinite(v)].tolist())
            for name, cats in parsed.items():
                self._categorical[name].extend(cats)
            self._labels.extend(str(label) for label in labels)

    def report(self) -> dict[str, Any]:
        """Per-feature scores, the predicted-class shift, the overall ``score`` (the largest
        PSI) and ``drift``: any feature or the classes drifted. Scores need at least a
        quarter of a window; before that ``ready`` is false and nothing drifts."""
        with self._lock:
            numeric = {k: np.asarray(v) for k, v in self._numeric.items()}
            categorical = {k: list(v) for k, v in self._categorical.items()}
            labels = list(self._labels)
        least = max(20, self.window // 4)
        features: dict[str, Any] = {}
        for name, values in numeric.items():
            ref = self.reference.numeric[name]
            if len(values) < least:
                features[name] = {"kind": "number", "rows": len(values), "ready": False, "drift": False}
                continue
            ks = stats.kstest(values, ref.cdf_at)
            features[name] = {
                "kind": "number",
                "rows": len(values),
                "ready": True,
                "ks": float(ks.statistic),
                "p_value": float(ks.pvalue),
                "psi": psi(*ref.shares(values)),
                "drift": bool(ks.pvalue < self.p_value),
            }
        for name, cats in categorical.items():
            cat = self.reference.categorical[name]
            if len(cats) < least:
                features[name] = {"kind": "category", "rows": len(cats), "ready": False, "drift": False}
                continue
            seen = cat.counts(cats)
            score = psi(cat.shares, seen / seen.sum())
            statistic, p = chi2(cat.shares, seen)
            features[name] = {
                "kind": "category",
                "rows": len(cats),
                "ready": True,
                "chi2": statistic,
                "p_value": p,
                "psi": score,
                "other": round(
                    float(seen[-1] / seen.sum()), 4
                ),  # share of values the reference does not name
                "drift": bool(score > self.psi_limit or p < self.p_value),
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
