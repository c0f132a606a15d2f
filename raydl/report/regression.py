"""Regression figures: residuals against predictions, in the target's own units."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from raydl.report.render import figure


def residuals_figure(y: np.ndarray, y_pred: np.ndarray, label: str) -> str:
    """Residual (true − predicted) against the prediction: a trend or a funnel is what a
    single RMSE hides."""
    residual = np.asarray(y, np.float64) - np.asarray(y_pred, np.float64)
    fig, (ax, hist) = plt.subplots(
        1, 2, figsize=(9, 3.6), width_ratios=(3, 1), sharey=True, layout="constrained"
    )
    ax.scatter(y_pred, residual, s=12, alpha=0.7)
    ax.axhline(0.0, color="k", lw=0.8)
    ax.set_xlabel(f"predicted {label}")
    ax.set_ylabel(f"residual: true − predicted ({label} units)")
    hist.hist(residual, bins=20, orientation="horizontal", color="#999")
    hist.set_xlabel("rows")
    return figure(fig, "residuals against predictions")
