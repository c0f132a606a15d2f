"""Learning curves: one panel per quantity, train and val together."""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
from matplotlib.ticker import MaxNLocator

from raydl.report.render import figure

_NOT_CURVES = ("seconds", "samples_per_s")


def curves_figure(epochs: list[dict[str, Any]], loss_units: str | None = None) -> str:
    """``loss_units``: what the loss is measured on, added to its panel's title (regression:
    the standardized target)."""
    x = [e.get("epoch", i + 1) for i, e in enumerate(epochs)]
    keys = {
        k for e in epochs for k in e if k.startswith(("train_", "val_")) and isinstance(e[k], int | float)
    }
    kinds = sorted({k.split("_", 1)[1] for k in keys} - set(_NOT_CURVES), key=lambda k: (k != "loss", k))
    if not kinds:
        return '<p class="muted">no epochs logged</p>'
    cols = min(3, len(kinds))
    rows = (len(kinds) + cols - 1) // cols
    fig, axes = plt.subplots(
        rows, cols, figsize=(4.2 * cols, 3.0 * rows), layout="constrained", squeeze=False
    )
    flat = axes.ravel()
    for ax, kind in zip(flat, kinds):
        for prefix in ("train", "val"):
            k = f"{prefix}_{kind}"
            if k in keys:
                ax.plot(x, [e.get(k) for e in epochs], marker="o", ms=3, label=prefix)
        ax.set_title(f"{kind} ({loss_units})" if kind == "loss" and loss_units else kind, fontsize=10)
        ax.set_xlabel("epoch")
        if len(x) <= 12:
            ax.set_xticks(x)  # epochs are whole; one epoch is one point, not a 0.95–1.05 axis
        else:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(fontsize=8)
    for ax in flat[len(kinds) :]:
        ax.remove()
    return figure(fig, "learning curves")
