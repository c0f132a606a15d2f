"""The runs of a runs folder, newest first: status, task, main metric and time, read from
each run directory's manifest (and, for runs from before the status was recorded, from
what the directory holds)."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from raydl.errors import RaydlError

MAIN_METRICS = ("accuracy", "r2", "rmse", "perplexity", "test_loss")  # the first a run has is shown


@dataclass(frozen=True)
class RunSummary:
    path: Path
    status: str  # running | succeeded | failed | interrupted | unknown
    task: str | None
    main_metric: tuple[str, float] | None
    created: str  # ISO time, to the second
    stage: str | None = None  # where a failed run failed
    error: str | None = None


def main_metric(metrics: dict[str, Any]) -> tuple[str, float] | None:
    """The one test metric a listing shows: the first of ``MAIN_METRICS`` the run reports."""
    for name in MAIN_METRICS:
        if isinstance(metrics.get(name), int | float) and not isinstance(metrics.get(name), bool):
            return name, float(metrics[name])
    return None


def _json(path: Path) -> dict[str, Any]:
    try:
        loaded = json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, ValueError):
        return {}
    return loaded if isinstance(loaded, dict) else {}


def _task(run: Path) -> str | None:
    import yaml

    try:
        spec = yaml.safe_load((run / "spec.yaml").read_text())
    except (OSError, yaml.YAMLError):
        return None
    data = spec.get("data") if isinstance(spec, dict) else None
    return data.get("task") if isinstance(data, dict) else None


def summarize(run: Path) -> RunSummary:
    manifest = _json(run / "manifest.json")
    metrics = _json(run / "metrics.json")
    status = manifest.get("status") or ("succeeded" if metrics else "unknown")
    created = manifest.get("created") or dt.datetime.fromtimestamp(run.stat().st_mtime).isoformat(
        timespec="seconds"
    )
    return RunSummary(
        run,
        status,
        manifest.get("task") or _task(run),
        main_metric(metrics),
        created,
        manifest.get("stage"),
        manifest.get("error"),
    )


def list_runs(root: str | Path) -> list[RunSummary]:
    """Every run directory (a folder with a ``spec.yaml``) directly in ``root``, newest first.

    Raises:
        RaydlError: ``root`` is not a folder.
    """
    folder = Path(root)
    if not folder.is_dir():
        raise RaydlError(f"{root}: no such runs folder")
    runs = [summarize(p) for p in folder.iterdir() if (p / "spec.yaml").is_file()]
    return sorted(runs, key=lambda r: (r.created, r.path.name), reverse=True)
