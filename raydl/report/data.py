"""The Data section: row counts, cleaning steps, gaps, class balance, feature histograms."""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import numpy as np

from raydl.report.render import figure, table

HISTOGRAMS = 12  # feature histograms drawn at most (the table lists every feature)


def data_section(report: dict[str, Any], names: dict[str, str]) -> str:
    """``names``: a class value's display name (see :mod:`raydl.names`), where it differs."""
    split = report.get("split", {})
    facts = [{"": "rows", "value": report.get("rows")}]
    facts += [{"": f"{k} rows", "value": v} for k, v in split.get("rows", {}).items()]
    for key in ("duplicates", "missing_label", "input_shape", "fingerprint"):
        if key in report:
            facts.append({"": key.replace("_", " "), "value": report[key]})
    parts = [table(facts, ["", "value"])]
    if report.get("steps"):
        steps = [
            {
                "step": s.get("name"),
                "rows in": s.get("rows_in"),
                "rows out": s.get("rows_out"),
                "changed": s.get("changed"),
            }
            for s in report["steps"]
        ]
        parts.append("<h3>cleaning steps</h3>" + table(steps))
    for key in ("missing", "outliers"):
        if isinstance(report.get(key), dict):
            rows = [{"column": c, "rows": n} for c, n in report[key].items() if n]
            body = table(rows) if rows else f'<p class="muted">no {key} in any column</p>'
            parts.append(f"<h3>{key}</h3>" + body)
    counts = _count_groups(report.get("class_counts"))
    if counts:
        parts.append("<h3>class counts</h3>" + class_counts_figure(counts, names))
    features = report.get("features")
    if isinstance(features, dict) and features:
        rows = [
            {"feature": c, **{k: f.get(k) for k in ("mean", "std", "min", "max")}}
            for c, f in features.items()
        ]
        parts.append("<h3>features</h3>" + table(rows))
        hist = [(c, f["histogram"]) for c, f in features.items() if isinstance(f.get("histogram"), dict)]
        if hist:
            parts.append(histograms_figure(hist[:HISTOGRAMS]))
            if len(hist) > HISTOGRAMS:
                parts.append(
                    f'<p class="muted">histograms of the first {HISTOGRAMS} of {len(hist)} features</p>'
                )
    return "".join(parts)


def _count_groups(counts: Any) -> dict[str, dict[str, int]]:
    """The splits' class counts, and the train split after balancing when balancing changed
    it (``before`` is the train split again: not drawn twice)."""
    if not isinstance(counts, dict):
        return {}
    groups = {g: c for g, c in counts.items() if g not in ("before", "after") and c}
    if "train" not in groups and counts.get("before"):  # a report without the splits' counts
        groups = {"train": counts["before"], **groups}
    after = counts.get("after")
    if after and after != counts.get("before"):
        groups["train, balanced"] = after
    return groups


def class_counts_figure(counts: dict[str, dict[str, int]], names: dict[str, str]) -> str:
    return figure(class_counts_plot(counts, names), "class counts")


def class_counts_plot(counts: dict[str, dict[str, int]], names: dict[str, str]):
    """Rows per class and group (train/val/test, or before/after balancing) as horizontal
    bars: class names stay readable for 2 or 20 classes, the legend sits outside the bars."""
    groups = [g for g in counts if counts[g]]
    labels = sorted({lbl for g in groups for lbl in counts[g]}, key=_natural)
    height = 0.8 / len(groups)
    fig, ax = plt.subplots(
        figsize=(7.5, 1.0 + max(0.3, 0.12 * len(groups) + 0.08) * len(labels)), layout="constrained"
    )
    y = np.arange(len(labels))
    for i, g in enumerate(groups):
        values = [counts[g].get(lbl, 0) for lbl in labels]
        ax.barh(y + (i - (len(groups) - 1) / 2) * height, values, height, label=g)
    ax.set_yticks(y, [names.get(lbl, lbl) for lbl in labels])
    ax.invert_yaxis()  # first class on top, as in the tables
    ax.set_xlabel("rows")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    return fig


def _natural(label: str) -> tuple[int, Any]:
    return (0, int(label)) if str(label).lstrip("-").isdigit() else (1, str(label))


def histograms_figure(hist: list[tuple[str, dict[str, Any]]]) -> str:
    return figure(histograms_plot(hist), "feature histograms")


def histograms_plot(hist: list[tuple[str, dict[str, Any]]]):
    """One small histogram per feature on a grid; grid cells past the last feature are removed."""
    cols = min(4, len(hist))
    rows = (len(hist) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(3 * cols, 2.3 * rows), layout="constrained", squeeze=False)
    flat = axes.ravel()
    for ax, (c, h) in zip(flat, hist):
        edges = np.asarray(h["edges"], dtype=float)
        ax.bar(edges[:-1], h["counts"], width=np.diff(edges), align="edge", color="#4c72b0")
        ax.set_title(c if len(c) <= 28 else c[:27] + "…", fontsize=9)
        ax.tick_params(labelsize=7)
    for ax in flat[len(hist) :]:
        ax.remove()
    return fig
