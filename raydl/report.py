"""report.html: one self-contained page about a run (images embedded as base64 PNG).

Built from what the run directory holds — data_report.json, metrics.jsonl, metrics.json,
errors.json, predictions.npz, tune/trials.csv, cv/summary.json — and renders whatever
of these is present, so it works for any run (and for data reports with more or fewer keys).
"""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from raydl.rundir import RunDir  # noqa: E402

REPORT = "report.html"
_CSS = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.6em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ddd;padding:.25em .6em;text-align:right}
th{background:#f4f4f4}td:first-child,th:first-child{text-align:left}img{max-width:100%}
.muted{color:#777}
"""


def _img(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return f'<img alt="" src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}">'


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return html.escape(str(v))


def _table(rows: list[dict[str, Any]], columns: list[str] | None = None) -> str:
    if not rows:
        return '<p class="muted">none</p>'
    columns = columns or list(dict.fromkeys(k for r in rows for k in r))
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{_fmt(r.get(c, ''))}</td>" for c in columns) + "</tr>" for r in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _section(sid: str, title: str, body: str) -> str:
    return f'<section id="{sid}"><h2>{html.escape(title)}</h2>{body}</section>'


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text()) if path.is_file() else None


# ------------------------------------------------------------------ sections
def _data_section(report: dict[str, Any]) -> str:
    parts = []
    split = report.get("split", {})
    facts = [{"": "rows", "value": report.get("rows")}]
    facts += [{"": f"{k} rows", "value": v} for k, v in split.get("rows", {}).items()]
    for key in ("duplicates", "input_shape", "fingerprint"):
        if key in report:
            facts.append({"": key, "value": report[key]})
    parts.append(_table(facts, ["", "value"]))
    if report.get("steps"):
        parts.append("<h3>cleaning steps</h3>" + _table(report["steps"]))
    for key in ("missing", "outliers"):
        if report.get(key):
            parts.append(
                f"<h3>{key}</h3>" + _table([{"column": c, "rows": n} for c, n in report[key].items()])
            )
    counts = report.get("class_counts")
    if isinstance(counts, dict) and counts:
        fig, ax = plt.subplots(figsize=(7, 3))
        groups = list(counts)
        labels = sorted({label for g in groups for label in (counts[g] or {})}, key=str)
        width = 0.8 / max(len(groups), 1)
        for i, g in enumerate(groups):
            ax.bar(
                np.arange(len(labels)) + i * width,
                [(counts[g] or {}).get(lbl, 0) for lbl in labels],
                width,
                label=g,
            )
        ax.set_xticks(np.arange(len(labels)) + width * (len(groups) - 1) / 2, labels)
        ax.set_ylabel("rows")
        ax.legend()
        ax.set_title("class counts")
        parts.append("<h3>class counts</h3>" + _img(fig))
    features = report.get("features")
    if isinstance(features, dict) and features:
        rows = [
            {"feature": c, **{k: f.get(k) for k in ("mean", "std", "min", "max")}}
            for c, f in features.items()
        ]
        parts.append("<h3>features</h3>" + _table(rows))
        hist = [(c, f["histogram"]) for c, f in features.items() if isinstance(f.get("histogram"), dict)][:12]
        if hist:
            cols = min(4, len(hist))
            fig, axes = plt.subplots(
                (len(hist) + cols - 1) // cols,
                cols,
                figsize=(3 * cols, 2.2 * ((len(hist) + cols - 1) // cols)),
            )
            for ax, (c, h) in zip(np.atleast_1d(axes).ravel(), hist):
                edges = np.asarray(h["edges"], dtype=float)
                ax.bar(edges[:-1], h["counts"], width=np.diff(edges), align="edge")
                ax.set_title(c, fontsize=8)
            parts.append(_img(fig))
    return "".join(parts)


def _curves_section(epochs: list[dict[str, Any]]) -> str:
    x = [e.get("epoch", i + 1) for i, e in enumerate(epochs)]
    keys = sorted(
        {k for e in epochs for k in e if k.startswith(("train_", "val_")) and isinstance(e[k], int | float)}
    )
    kinds = sorted(
        {k.split("_", 1)[1] for k in keys if k.split("_", 1)[1] not in ("seconds", "samples_per_s")}
    )
    if not kinds:
        return '<p class="muted">no epochs logged</p>'
    fig, axes = plt.subplots(1, len(kinds), figsize=(4.5 * len(kinds), 3.2), squeeze=False)
    for ax, kind in zip(axes[0], kinds):
        for prefix in ("train", "val"):
            k = f"{prefix}_{kind}"
            if k in keys:
                ax.plot(x, [e.get(k) for e in epochs], marker="o", label=prefix)
        ax.set_title(kind)
        ax.set_xlabel("epoch")
        ax.legend()
    return _img(fig)


def _confusion_section(metrics: dict[str, Any]) -> str:
    cm = np.asarray(metrics["confusion_matrix"])
    classes = metrics.get("classes") or [str(i) for i in range(len(cm))]
    fig, ax = plt.subplots(figsize=(1 + 0.5 * len(cm), 0.8 + 0.5 * len(cm)))
    im = ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(len(cm)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(cm)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(len(cm)):
        for j in range(len(cm)):
            ax.text(
                j,
                i,
                str(int(cm[i, j])),
                ha="center",
                va="center",
                fontsize=7,
                color="white" if cm[i, j] > cm.max() / 2 else "black",
            )
    fig.colorbar(im, ax=ax)
    return _img(fig)


def _roc_section(pred: dict[str, np.ndarray], classes: list[str]) -> str:
    from sklearn.metrics import auc, roc_curve

    y, scores = pred["y"].astype(np.int64), pred["scores"]
    fig, ax = plt.subplots(figsize=(5, 4.5))
    targets = [1] if scores.shape[1] == 2 else range(scores.shape[1])
    for c in targets:
        positives = y == c
        if positives.all() or not positives.any():
            continue
        fpr, tpr, _ = roc_curve(positives, scores[:, c])
        ax.plot(fpr, tpr, label=f"{classes[c]} (AUC {auc(fpr, tpr):.3f})")
    ax.plot([0, 1], [0, 1], "k--", lw=0.8)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.legend(fontsize=7)
    return _img(fig)


def _search_section(trials, metric: str | None) -> str:
    import pandas as pd

    table: pd.DataFrame = trials
    params = [c for c in table.columns if c.startswith("config/")]
    metric = metric or next((c for c in table.columns if c.startswith("val_")), None)
    parts = []
    if params and metric in table:
        fig, axes = plt.subplots(1, len(params), figsize=(4 * len(params), 3.2), squeeze=False)
        for ax, p in zip(axes[0], params):
            for status, group in table.groupby("status"):
                ax.scatter(group[p], group[metric], label=f"{status} ({len(group)})", alpha=0.8)
            if "lr" in p and (table[p] > 0).all():
                ax.set_xscale("log")
            ax.set_xlabel(p.removeprefix("config/"))
            ax.set_ylabel(metric)
        axes[0][0].legend(fontsize=7)
        parts.append(_img(fig))
    parts.append(_table(table.drop(columns=[c for c in ("trial_path",) if c in table]).to_dict("records")))
    return "".join(parts)


def build_report(path: str | Path) -> Path:
    """Write ``report.html`` into the run directory and return its path."""
    run = RunDir.open(path)
    metrics = _read_json(run.metrics) or {}
    sections = []
    scalars = [
        {"metric": k, "value": v} for k, v in metrics.items() if isinstance(v, int | float) or v is None
    ]
    cal = metrics.get("calibration") or {}  # evaluate.calibration: its T and the test ECE before/after
    scalars += [
        {"metric": f"calibration {k}", "value": cal[k]}
        for k in ("temperature", "ece_before", "ece_after")
        if k in cal
    ]
    if scalars:
        sections.append(_section("test-metrics", "Test metrics", _table(scalars, ["metric", "value"])))
    data = _read_json(run.data_report)
    if data:
        sections.append(_section("data", "Data", _data_section(data)))
    if run.metrics_log.is_file():
        epochs = [json.loads(line) for line in run.metrics_log.read_text().splitlines() if line.strip()]
        sections.append(_section("learning-curves", "Learning curves", _curves_section(epochs)))
    if "confusion_matrix" in metrics:
        sections.append(_section("confusion-matrix", "Confusion matrix", _confusion_section(metrics)))
    pred_file = run.path / "predictions.npz"
    if pred_file.is_file() and "classes" in metrics:
        pred = dict(np.load(pred_file))
        if "scores" in pred:
            sections.append(_section("roc", "ROC curves", _roc_section(pred, metrics["classes"])))
    if metrics.get("per_class"):
        rows = [{"class": c, **r} for c, r in zip(metrics.get("classes", []), metrics["per_class"])]
        sections.append(_section("per-class", "Per-class metrics", _table(rows)))
    errors = _read_json(run.path / "errors.json")
    if errors:
        body = ""
        if errors.get("confused_pairs") is not None:
            body += "<h3>most confused pairs</h3>" + _table(errors["confused_pairs"])
        body += "<h3>worst-predicted test examples</h3>" + _table(errors.get("worst", []))
        sections.append(_section("errors", "Error analysis", body))
    if (run.path / "tune" / "trials.csv").is_file():
        import pandas as pd

        best = _read_json(run.path / "tune" / "best.json") or {}
        metric = next((k for k in best if k.startswith(("val_", "cv_val_"))), None)
        body = f"<p>best config: <code>{html.escape(json.dumps(best.get('config')))}</code></p>"
        body += _search_section(pd.read_csv(run.path / "tune" / "trials.csv"), metric)
        sections.append(_section("search", "Hyperparameter search", body))
    cv = _read_json(run.path / "cv" / "summary.json")
    if cv:
        rows = [{"metric": k, "mean": v["mean"], "std": v["std"]} for k, v in cv["metrics"].items()]
        body = _table(rows) + "<h3>folds</h3>" + _table(cv["per_fold"])
        sections.append(_section("cross-validation", f"Cross-validation ({cv['folds']} folds)", body))
    compression = run.path / "compress" / "section.html"  # written by raydl.compress.plot
    if compression.is_file():
        sections.append(_section("compression", "Compression", compression.read_text()))

    title = html.escape(run.path.name)
    page = (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>raydl report: {title}</title>'
        f"<style>{_CSS}</style></head><body><h1>raydl report: {title}</h1>{''.join(sections)}</body></html>\n"
    )
    out = run.path / REPORT
    out.write_text(page)
    return out
