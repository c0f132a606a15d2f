"""Hyperparameter search: a parallel-coordinates view of the trials and their table."""

from __future__ import annotations

import html
from typing import Any

import matplotlib.pyplot as plt
import numpy as np

from raydl.report.render import figure, table


def _axis(values) -> tuple[np.ndarray, list[tuple[float, str]]]:
    """One column on [0, 1] and its tick labels: numbers (log scale when they span more than
    a factor of 20 and are positive), or categories in order of first appearance."""
    import pandas as pd

    v = pd.Series(values)
    if pd.api.types.is_numeric_dtype(v) and v.notna().any():
        x = v.to_numpy(dtype=np.float64)
        lo, hi = np.nanmin(x), np.nanmax(x)
        log = lo > 0 and hi / lo > 20
        t = np.log10(x) if log else x
        tlo, thi = np.nanmin(t), np.nanmax(t)
        scaled = (t - tlo) / (thi - tlo) if thi > tlo else np.full_like(t, 0.5)
        return scaled, [(0.0, f"{lo:.3g}"), (1.0, f"{hi:.3g}")] if thi > tlo else [(0.5, f"{lo:.3g}")]
    cats = list(dict.fromkeys(v.astype(str)))
    codes = np.asarray([cats.index(s) for s in v.astype(str)], dtype=np.float64)
    if len(cats) == 1:
        return np.full_like(codes, 0.5), [(0.5, cats[0])]
    return codes / (len(cats) - 1), [(i / (len(cats) - 1), c) for i, c in enumerate(cats)]


def parallel_figure(trials, params: list[str], metric: str, mode: str) -> str:
    """Each trial a line across its hyperparameters to its metric; colour: the metric (the
    best trials drawn last, on top)."""
    done = trials[trials[metric].notna()]
    columns = [*params, metric]
    scaled = {c: _axis(done[c]) for c in columns}
    order = np.argsort(done[metric].to_numpy() * (1 if mode == "max" else -1))
    cmap = plt.get_cmap("viridis")
    m = scaled[metric][0]
    fig, ax = plt.subplots(figsize=(2.0 + 1.9 * len(columns), 4.0), layout="constrained")
    xs = np.arange(len(columns))
    for i in order:
        ax.plot(
            xs, [scaled[c][0][i] for c in columns], color=cmap(m[i] if mode == "max" else 1 - m[i]), alpha=0.8
        )
    for x, c in zip(xs, columns):
        ax.axvline(float(x), color="#888", lw=0.8)
        for p, t in scaled[c][1]:
            ax.text(x + 0.04, p, t, fontsize=7, va="center")
    ax.set_xticks(xs, [c.removeprefix("config/") for c in columns], rotation=15)
    ax.set_yticks([])
    ax.set_xlim(-0.2, len(columns) - 0.5)
    ax.set_title(f"{len(done)} trials; colour: {metric} (bright: best)", fontsize=10)
    return figure(fig, "parallel coordinates of the trials")


def search_section(trials, metric: str | None, mode: str, best: dict[str, Any]) -> str:
    params = [c for c in trials.columns if c.startswith("config/")]
    metric = metric or next((c for c in trials.columns if c.startswith("val_")), None)
    parts = []
    failed = best.get("failed") or []
    if failed or best.get("retries"):
        # a crashed trial never stops the search: say which, and why, before the best config
        lines = [f"trial {f['trial']}: {f['error']}" for f in failed]
        parts.append(
            f"<p>{len(failed)} of {best.get('trials', len(trials))} trials failed "
            f"(crashes retried from a checkpoint: {best.get('retries', 0)}); the best of the others "
            "was chosen.</p>" + "".join(f"<p><code>{html.escape(line)}</code></p>" for line in lines)
        )
    if best.get("config"):
        parts.append(
            "<h3>best config</h3>" + table([{"parameter": k, "value": v} for k, v in best["config"].items()])
        )
    if params and metric is not None and metric in trials and trials[metric].notna().sum() >= 2:
        parts.append(parallel_figure(trials, params, metric, mode))
    shown = trials.drop(columns=[c for c in ("trial_path",) if c in trials])
    # "config/train.optimizer.lr" → "train.optimizer.lr": the table fits the page
    rows = shown.rename(columns=lambda c: c.removeprefix("config/")).to_dict("records")
    parts.append("<h3>trials</h3>" + table(rows))
    return "".join(parts)
