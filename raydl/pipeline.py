"""Runs the stages of a job in order over a run directory:
data → train → evaluate (tune, compress and serve come later)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from raydl import env
from raydl.data.prepare import prepare_data
from raydl.data.preprocess import Preprocessor
from raydl.errors import RaydlError
from raydl.evaluate.evaluator import evaluate_model
from raydl.models import build_model
from raydl.progress import Display
from raydl.rundir import RunDir, manifest
from raydl.runtime import connect
from raydl.spec import JobSpec, load_spec
from raydl.train import transfer
from raydl.train.checkpoint import load_model_dir
from raydl.train.trainer import fit

log = logging.getLogger(__name__)


@dataclass
class RunResult:
    run_dir: Path
    metrics: dict[str, Any]


def run(
    spec: JobSpec,
    *,
    runs_root: str | Path | None = None,
    display: Display | None = None,
    verbose: bool = False,
) -> RunResult:
    """Run a validated job end to end and return its run directory and test metrics."""
    display = display or Display(quiet=True)
    run_dir = RunDir.create(runs_root or env.runs_root(), spec.name)
    run_dir.spec.write_text(spec.to_yaml())
    display.start(spec, run_dir.path)

    with connect(spec, verbose) as resources:
        display.stage("data", "reading, splitting and fitting preprocessing on Ray Data")
        prepared = prepare_data(spec)
        prepared.preprocessor.save(run_dir.preprocessor)
        run_dir.write_json(run_dir.data_report, prepared.report)
        run_dir.write_json(run_dir.manifest, manifest(spec.seed, prepared.report["fingerprint"], resources))
        display.data(prepared.report)

        # Build once here: a model that cannot take this data fails before Ray Train starts.
        pre = prepared.preprocessor
        model = build_model(
            spec.model.arch,
            tuple(pre.input_shape),
            pre.num_outputs,
            transfer.builder_params(spec.model),
            pre.data_info,
        )
        transfer.freeze(model, spec.model.pretrained.freeze)  # a pattern matching nothing fails here
        display.stage(
            "train",
            f"{spec.train.workers} Ray Train workers, "
            f"{sum(p.numel() for p in model.parameters()):,} parameters",
        )
        with display.epochs(spec.train.epochs) as on_epoch:
            result = fit(spec, prepared, run_dir, on_epoch=on_epoch)

        display.stage(
            "evaluate",
            f"best checkpoint by {spec.train.checkpoint.metric} (epoch {result.best_metrics.get('epoch')})",
        )
        metrics = evaluate_model(
            load_model_dir(result.best_checkpoint), prepared.datasets["test"], pre, spec.evaluate.metrics
        )
        metrics["best_epoch"] = result.best_metrics.get("epoch")
        metrics["epochs_run"] = result.epochs_run
        run_dir.write_json(run_dir.metrics, metrics)
    display.metrics(metrics, spec.data.task)
    display.done(run_dir.path)
    return RunResult(run_dir.path, metrics)


def evaluate_run(
    path: str | Path, *, display: Display | None = None, verbose: bool = False
) -> dict[str, Any]:
    """Re-evaluate a run's best checkpoint on its test split, rebuilt from the saved spec
    (same seed → same split, checked by the data fingerprint) and the saved preprocessor.

    Raises:
        RaydlError: the run is incomplete, or its data changed since it ran.
    """
    display = display or Display(quiet=True)
    run_dir = RunDir.open(path)
    spec = load_spec(run_dir.spec)
    expected = run_dir.read_json(run_dir.manifest)["data_fingerprint"]
    if not (run_dir.best_checkpoint / "model.json").is_file():
        raise RaydlError(f"{path}: no best checkpoint; did training finish?")
    with connect(spec, verbose):
        prepared = prepare_data(spec, preprocessor=Preprocessor.load(run_dir.preprocessor))
        if prepared.report["fingerprint"] != expected:
            raise RaydlError(
                f"data: the data changed since this run (fingerprint "
                f"{prepared.report['fingerprint']}, the run saw {expected})"
            )
        metrics = evaluate_model(
            load_model_dir(run_dir.best_checkpoint),
            prepared.datasets["test"],
            prepared.preprocessor,
            spec.evaluate.metrics,
        )
    display.metrics(metrics, spec.data.task)
    return metrics
