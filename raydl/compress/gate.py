"""The quality gate: which measured candidates may be served, and which one is.

A candidate passes when its test metric is at most ``max_metric_drop`` worse than the
original's and (when set) its batch-1 p50 latency is within ``latency_budget_ms``. Among
those that pass, ``prefer`` picks the fastest or the smallest. A failing candidate is
never selected; its row says why.
"""

from __future__ import annotations

from typing import Any

from raydl.catalog import metric_mode
from raydl.spec.compress import SelectSpec

ORIGINAL = "original"


def apply_gate(rows: list[dict[str, Any]], select: SelectSpec, metric: str) -> str | None:
    """Mark each row ``passed`` with a ``gate`` reason (``drop`` too) and return the
    selected row's name, or None when none passes. ``rows[0]`` must be the original."""
    base = rows[0]
    assert base["name"] == ORIGINAL, "the original model is the first row"
    worse = -1.0 if metric_mode(metric, None) == "max" else 1.0  # how much worse a value is
    for row in rows:
        drop = worse * (row["metrics"][metric] - base["metrics"][metric])
        row["drop"] = drop
        reasons = []
        if drop > select.max_metric_drop + 1e-12:
            reasons.append(f"{metric} drop {drop:.4f} > max_metric_drop {select.max_metric_drop}")
        budget = select.latency_budget_ms
        if budget is not None and row["latency_p50_ms"] > budget:
            reasons.append(f"p50 {row['latency_p50_ms']:.3f} ms > latency_budget_ms {budget}")
        if row.get("baseline"):  # the distilled student's yardstick (student_alone)
            reasons.append("baseline: shown, never served")
        row["passed"] = not reasons
        row["gate"] = "; ".join(reasons) if reasons else "pass"
    passing = [r for r in rows if r["passed"]]
    if not passing:
        return None
    key = "latency_p50_ms" if select.prefer == "latency" else "size_bytes"
    chosen = min(passing, key=lambda r: (r[key], r["name"] != ORIGINAL))
    for row in rows:
        row["selected"] = row is chosen
    return str(chosen["name"])
