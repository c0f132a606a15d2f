"""Column statistics in one distributed pass: moments and a quantile sketch per numeric
column, value counts per categorical one — computed per block, merged on the driver. The
data report, the outlier rule, gap fills and feature scaling all read them."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import pandas as pd
import ray

QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
SKETCH_K = 800  # KLL sketch size: exact below ~k values per column, ~0.35% rank error above
CATEGORIES_KEPT = 100  # a categorical column's most frequent values counted by name in the report


def _sketch():
    from datasketches import kll_doubles_sketch

    return kll_doubles_sketch(SKETCH_K)


def _block_stats(
    batch: dict[str, np.ndarray], columns: list[str], counts: list[str]
) -> dict[str, np.ndarray]:
    """Per column: n, sum, sum of squares, a serialized quantile sketch (finite values);
    for ``counts`` columns also their value counts. One row per block."""
    out: dict[str, Any] = {}
    for c in columns:
        v = np.asarray(batch[c], np.float64)
        v = v[np.isfinite(v)]
        sk = _sketch()
        if len(v):
            sk.update(v)
        out[f"{c}/n"] = np.array([len(v)])
        out[f"{c}/s"] = np.array([v.sum()])
        out[f"{c}/ss"] = np.array([(v**2).sum()])
        out[f"{c}/sk"] = np.array([sk.serialize()], dtype=object)
    for c in counts:
        vc = pd.Series(batch[c]).dropna().value_counts()
        out[f"{c}/vc"] = np.array([dict(zip(vc.index.tolist(), vc.tolist()))], dtype=object)
    return out


@dataclass
class ColumnStats:
    n: int
    mean: float
    std: float
    sketch: Any  # a merged kll_doubles_sketch, or None when there are no values
    counts: Counter | None = None

    def quantiles(self, qs=QUANTILES) -> list[float]:
        return [float(v) for v in self.sketch.get_quantiles(list(qs))] if self.n else [float("nan")] * len(qs)

    def describe(self, bins: int = 20) -> dict[str, Any]:
        """mean, std, min, max, quantiles and a histogram: the report's (and drift's) form."""
        if not self.n:
            return {"count": 0}
        lo, hi = float(self.sketch.get_min_value()), float(self.sketch.get_max_value())
        edges = np.linspace(lo, hi, bins + 1) if hi > lo else np.array([lo, lo + 1.0])
        cdf = np.asarray(self.sketch.get_cdf(edges[1:-1].tolist()))  # P(X < edge) ... and 1.0
        mass = np.diff(np.concatenate([[0.0], cdf[:-1], [1.0]]))
        return {
            "count": self.n,
            "mean": self.mean,
            "std": self.std,
            "min": lo,
            "max": hi,
            "quantiles": {str(q): v for q, v in zip(QUANTILES, self.quantiles())},
            "histogram": {"edges": edges.tolist(), "counts": np.rint(mass * self.n).astype(int).tolist()},
        }

    def describe_counts(self, known: Iterable[Any], kept: int = CATEGORIES_KEPT) -> dict[str, Any]:
        """A categorical column's rows per value the encoder knows (``known``; its ``kept``
        most frequent, most frequent first) and ``other``: the rows of every other value.
        The report's (and drift's) form: small whatever the column's cardinality."""
        counts: Counter = Counter()
        for value, n in (self.counts or {}).items():
            counts[str(value)] += int(n)
        named = sorted({str(v) for v in known}, key=lambda v: (-counts[v], v))[:kept]
        by_value = {v: counts[v] for v in named}
        total = sum(counts.values())
        return {"count": total, "counts": by_value, "other": total - sum(by_value.values())}


def column_stats(
    ds: ray.data.Dataset, columns: list[str], counts: list[str] | None = None
) -> dict[str, ColumnStats]:
    """Moments and a quantile sketch per numeric column (value counts for ``counts``
    columns), in one distributed pass; missing and non-finite values are left out."""
    counts = counts or []
    if not columns and not counts:
        return {}
    from datasketches import kll_doubles_sketch

    parts = ds.map_batches(
        partial(_block_stats, columns=columns, counts=counts), batch_format="numpy", batch_size=None
    ).take_all()
    stats: dict[str, ColumnStats] = {}
    for c in columns:
        n = sum(int(p[f"{c}/n"]) for p in parts)
        s = sum(float(p[f"{c}/s"]) for p in parts)
        ss = sum(float(p[f"{c}/ss"]) for p in parts)
        sk = _sketch()
        for p in parts:
            sk.merge(kll_doubles_sketch.deserialize(p[f"{c}/sk"]))
        mean = s / n if n else float("nan")
        std = float(np.sqrt(max(ss / n - mean**2, 0.0))) if n else float("nan")
        stats[c] = ColumnStats(n, mean, std, sk)
    for c in counts:
        total: Counter = Counter()
        for p in parts:
            total.update(p[f"{c}/vc"])
        if c in stats:
            stats[c].counts = total
        else:
            stats[c] = ColumnStats(sum(total.values()), float("nan"), float("nan"), None, total)
    return stats
