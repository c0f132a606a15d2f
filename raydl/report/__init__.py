"""report.html: one self-contained page about a run (figures embedded as base64 PNG).

Built from what the run directory holds — manifest.json, data_report.json, metrics.jsonl,
metrics.json, errors.json, predictions.npz, preprocessor/, tune/trials.csv,
cv/summary.json — it renders whatever of these is present, one module per section or
figure. A run that failed gets no page: :class:`RunFailed` says what failed, and where.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

import numpy as np

from raydl import artifacts
from raydl.errors import RaydlError
from raydl.names import class_names
from raydl.report.classification import calibration_figure, confusion_figure, roc_figure
from raydl.report.curves import curves_figure
from raydl.report.data import data_section
from raydl.report.errors import errors_section
from raydl.report.regression import residuals_figure
from raydl.report.render import CSS, note, read_json, section, table
from raydl.report.search import search_section
from raydl.rundir import RunDir
from raydl.units import regression_units

__all__ = ["REPORT", "RunFailed", "build_report"]

REPORT = "report.html"


class RunFailed(RaydlError):
    """``raydl report`` on a run that failed (or was interrupted): what failed and where."""

    exit_code = 1


def _failure(run: RunDir) -> str | None:
    manifest = read_json(run.manifest) or {}
    if manifest.get("status") not in ("failed", "interrupted"):
        return None
    return (
        f"{run.path}: the run {manifest['status']} in its {manifest.get('stage', '?')} stage: "
        f"{manifest.get('error') or 'no error recorded'}; no report (fix it and run the spec again)"
    )


def _spec(run: RunDir) -> dict[str, Any]:
    import yaml

    loaded = yaml.safe_load(run.spec.read_text())
    return loaded if isinstance(loaded, dict) else {}


def _units(run: RunDir, spec: dict[str, Any]) -> str | None:
    """The regression units sentence, from the fitted target scaling."""
    data = spec.get("data") or {}
    if data.get("task") != "regression":
        return None
    state = read_json(run.preprocessor / "preprocessor.json") or {}
    loss = ((spec.get("train") or {}).get("loss") or {}).get("type", "mse")
    return regression_units(
        str(data.get("label", "target")),
        state.get("target_center", 0.0),
        state.get("target_scale", 1.0),
        loss,
    )


def build_report(path: str | Path) -> Path:
    """Write ``report.html`` into the run directory and return its path.

    Raises:
        RunFailed: the run failed or was interrupted (its manifest says so).
    """
    run = RunDir.open(path)
    failed = _failure(run)
    if failed:
        raise RunFailed(failed)
    spec = _spec(run)
    source = (spec.get("data") or {}).get("source") or {}
    builtin = source.get("name") if source.get("type") == "builtin" else None
    metrics = read_json(run.metrics) or {}
    units = _units(run, spec)
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
        body = (note(units) if units else "") + table(scalars, ["metric", "value"])
        sections.append(section("test-metrics", "Test metrics", body))
    data = read_json(run.data_report)
    if data:
        labels = {lbl for g in (data.get("class_counts") or {}).values() for lbl in g or {}}
        names = dict(zip(sorted(labels), class_names(sorted(labels), builtin)))
        sections.append(section("data", "Data", data_section(data, names)))
    if run.metrics_log.is_file():
        epochs = [json.loads(line) for line in run.metrics_log.read_text().splitlines() if line.strip()]
        loss_units = "standardized target" if units else None
        sections.append(section("learning-curves", "Learning curves", curves_figure(epochs, loss_units)))
    classes = metrics.get("classes") or []
    if "confusion_matrix" in metrics:
        cm = np.asarray(metrics["confusion_matrix"])
        figure = confusion_figure(cm, classes or [str(i) for i in range(len(cm))])
        sections.append(section("confusion-matrix", "Confusion matrix", figure))
    pred_file = run.path / "predictions.npz"
    pred = dict(np.load(pred_file)) if pred_file.is_file() else {}
    if "scores" in pred and classes:
        y = pred["y"].astype(np.int64)
        sections.append(section("roc", "ROC curves", roc_figure(y, pred["scores"], classes)))
        sections.append(section("calibration", "Calibration", calibration_figure(y, pred["scores"])))
    if units and "y_pred" in pred:
        label = str((spec.get("data") or {}).get("label", "target"))
        sections.append(section("residuals", "Residuals", residuals_figure(pred["y"], pred["y_pred"], label)))
    if metrics.get("per_class"):
        rows = [{"class": c, **r} for c, r in zip(classes, metrics["per_class"])]
        sections.append(section("per-class", "Per-class metrics", table(rows)))
    errors = read_json(run.path / "errors.json")
    if errors:
        sections.append(section("errors", "Error analysis", errors_section(errors)))
    if (run.path / "tune" / "trials.csv").is_file():
        import pandas as pd

        best = read_json(run.path / "tune" / "best.json") or {}
        metric = next((k for k in best if k.startswith(("val_", "cv_val_"))), None)
        mode = (spec.get("tune") or {}).get("mode", "max")
        trials = pd.read_csv(run.path / "tune" / "trials.csv")
        sections.append(
            section("search", "Hyperparameter search", search_section(trials, metric, mode, best))
        )
    cv = read_json(run.path / "cv" / "summary.json")
    if cv:
        rows = [{"metric": k, "mean": v["mean"], "std": v["std"]} for k, v in cv["metrics"].items()]
        body = table(rows) + "<h3>folds</h3>" + table(cv["per_fold"])
        sections.append(section("cross-validation", f"Cross-validation ({cv['folds']} folds)", body))
    compression = run.path / "compress" / "section.html"  # written by raydl.compress.plot
    if compression.is_file():
        sections.append(section("compression", "Compression", compression.read_text()))

    title = html.escape(run.path.name)
    page = (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>raydl report: {title}</title>'
        f"<style>{CSS}</style></head><body><h1>raydl report: {title}</h1>{''.join(sections)}</body></html>\n"
    )
    out = run.path / REPORT
    artifacts.write_text(out, page)
    return out
