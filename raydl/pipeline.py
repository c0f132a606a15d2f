"""Runs the stages of a job in order over a run directory:
data → train (or tune) → evaluate → compress (when the spec has ``compress:``)."""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from raydl import artifacts, env
from raydl.checks import load_spec
from raydl.data.augment import build_augment
from raydl.data.prepare import prepare_data
from raydl.data.preprocess import Preprocessor
from raydl.errors import RaydlError
from raydl.evaluate.evaluator import evaluate_model
from raydl.models import build_model
from raydl.names import names_by_value, names_for
from raydl.predict import CALIBRATION
from raydl.progress import Display
from raydl.rundir import RunDir, manifest, publish, runs_root_for
from raydl.runtime import ClusterLost, connect
from raydl.spec import JobSpec
from raydl.train import transfer
from raydl.train.checkpoint import load_model_dir
from raydl.train.trainer import fit, has_checkpoint, in_driver
from raydl.units import regression_units

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
    resume_search: str | Path | None = None,
) -> RunResult:
    """Run a validated job end to end and return its run directory and test metrics.
    ``resume_search``: the run directory of a stopped search to continue (``tune:`` jobs)."""
    display = display or Display(quiet=True)
    storage = spec.cluster.storage
    if resume_search is not None:
        run_dir = RunDir.open(resume_search)
    else:
        run_dir = RunDir.create(runs_root or runs_root_for(storage) or env.runs_root(), spec.name)
        try:
            artifacts.write_text(run_dir.spec, spec.to_yaml())
        except OSError:
            run_dir.path.rmdir()  # a full disk leaves no empty run behind
            raise
    display.start(spec, run_dir.path)
    publish_to = storage if storage and not runs_root and not runs_root_for(storage) else None
    return _train_and_evaluate(
        spec, run_dir, display, verbose, resume_search=resume_search is not None, publish_to=publish_to
    )


def resume_run(path: str | Path, *, display: Display | None = None, verbose: bool = False) -> RunResult:
    """Continue a stopped run (Ctrl-C, a killed driver, a lost cluster) in its own run
    directory: the saved spec and preprocessor, the same data (checked by fingerprint),
    training from the latest checkpoint's epoch with its optimizer/scheduler/scaler state.

    Raises:
        RaydlError: not a run directory, no checkpoint to resume from, the run already
            finished, or its data changed.
    """
    display = display or Display(quiet=True)
    run_dir = RunDir.open(path)
    if run_dir.metrics.is_file():
        raise RaydlError(f"{path}: this run already finished (metrics.json exists); nothing to resume")
    if not has_checkpoint(run_dir):
        raise RaydlError(
            f"{path}: no checkpoint to resume from (the run stopped before its first checkpoint); "
            "start it again with `raydl run SPEC`"
        )
    spec = load_spec(run_dir.spec)
    display.start(spec, run_dir.path)
    expected = run_dir.read_json(run_dir.manifest)["data_fingerprint"]
    storage = spec.cluster.storage
    return _train_and_evaluate(
        spec,
        run_dir,
        display,
        verbose,
        Preprocessor.load(run_dir.preprocessor),
        expected,
        publish_to=storage if storage and not runs_root_for(storage) else None,
    )


class _Stages:
    """The stage a run is in, shown to the user and recorded if the run fails."""

    def __init__(self, display: Display):
        self.display, self.current = display, "start"

    def __call__(self, name: str, detail: str) -> None:
        self.current = name
        self.display.stage(name, detail)


def _train_and_evaluate(
    spec: JobSpec,
    run_dir: RunDir,
    display: Display,
    verbose: bool,
    preprocessor: Preprocessor | None = None,
    fingerprint: str | None = None,
    *,
    resume_search: bool = False,
    publish_to: str | None = None,
) -> RunResult:
    """The stages in order; a run that fails or is interrupted says so, and where, in its
    ``manifest.json`` (``status``, ``stage``, ``error``) before the error goes on up."""
    stages = _Stages(display)
    run_dir.mark("running", task=spec.data.task)
    try:
        result = _stages(
            spec, run_dir, display, stages, verbose, preprocessor, fingerprint, resume_search, publish_to
        )
    except KeyboardInterrupt:
        run_dir.mark("interrupted", stage=stages.current, error="interrupted (Ctrl-C)")
        raise
    except BaseException as e:
        # best effort: on a full disk the manifest cannot be written either, and the error
        # that goes on up must be the first one
        with contextlib.suppress(OSError):
            run_dir.mark("failed", stage=stages.current, error=f"{type(e).__name__}: {e}".strip())
        if isinstance(e, ClusterLost):  # what to do next, with the run that has to do it
            raise ClusterLost(
                f"{e}; in {stages.current}. The checkpoints that reached the run directory are kept: "
                f"raydl run --resume {run_dir.path}"
            ) from e.__cause__
        raise
    run_dir.mark("succeeded", task=spec.data.task)
    return result


def _stages(
    spec: JobSpec,
    run_dir: RunDir,
    display: Display,
    stage: _Stages,
    verbose: bool,
    preprocessor: Preprocessor | None,
    fingerprint: str | None,
    resume_search: bool,
    publish_to: str | None,
) -> RunResult:
    with connect(spec, verbose) as resources:
        stage("data", "reading, splitting and fitting preprocessing on Ray Data")
        with display.working("preparing data"):
            prepared = prepare_data(spec, preprocessor=preprocessor)
        if fingerprint is not None and prepared.report["fingerprint"] != fingerprint:
            raise RaydlError(
                f"data: the data changed since this run (fingerprint "
                f"{prepared.report['fingerprint']}, the run saw {fingerprint}); cannot resume"
            )
        if preprocessor is None:
            prepared.preprocessor.save(run_dir.preprocessor)
            run_dir.record_artifact(run_dir.preprocessor)
            run_dir.write_json(run_dir.data_report, prepared.report)
            facts = manifest(spec.seed, prepared.report["fingerprint"], resources)
            run_dir.mark("running", task=spec.data.task, **facts)
        display.data(prepared.report)
        pre = prepared.preprocessor
        shown = names_for(spec, pre.classes)
        display.data_report(prepared.report, names_by_value(spec, pre.classes))

        # Build once here: a model that cannot take this data fails before Ray Train starts.
        model = build_model(
            spec.model.arch,
            tuple(pre.input_shape),
            pre.num_outputs,
            transfer.builder_params(spec.model),
            pre.data_info,
        )
        build_augment(spec.data.augment, pre.input_shape, pre.num_outputs, pre.data_info)  # fail early
        transfer.freeze(model, spec.model.pretrained.freeze)  # a pattern matching nothing fails here
        where = (
            "1 worker in this process (one node: no worker group to start)"
            if spec.tune is None and in_driver(spec)
            else f"{spec.train.workers} Ray Train workers"
        )
        stage(
            "train",
            f"{where}, {sum(p.numel() for p in model.parameters()):,} parameters"
            + (", resuming from the latest checkpoint" if preprocessor is not None else ""),
        )
        if spec.tune is not None:
            stage("tune", _search_detail(spec))
            with display.working("searching (trials in tune/trials.csv when done)"):
                search = _search(spec, prepared, run_dir, resume_search)
            best_checkpoint, best_metrics, epochs_run = (
                search.best_checkpoint,
                {"epoch": _checkpoint_epoch(search.best_checkpoint)},
                search.best_metrics["epochs"],
            )
            for line in _search_notes(search.best_metrics):
                display.note(line)
        else:
            with display.epochs(spec.train.epochs) as on_epoch:
                result = fit(spec, prepared, run_dir, on_epoch=on_epoch)
            best_checkpoint, best_metrics, epochs_run = (
                result.best_checkpoint,
                result.best_metrics,
                result.epochs_run,
            )

        stage(
            "evaluate",
            f"best checkpoint by {spec.train.checkpoint.metric} (epoch {best_metrics.get('epoch')})",
        )
        details: dict[str, Any] = {}
        with display.working("scoring the test split"):
            metrics = evaluate_model(
                load_model_dir(best_checkpoint),
                prepared.datasets["test"],
                pre,
                spec.evaluate.metrics,
                details,
                class_names=shown,
            )
        if "errors" in details:  # a VAE or language model scores no predictions
            from raydl.examples import attach_examples

            run_dir.write_json(run_dir.path / "errors.json", attach_examples(spec, details["errors"]))
        if "predictions" in details:
            _save_predictions(run_dir, details["predictions"])
        if spec.evaluate.calibration == "temperature" and "predictions" in details:
            metrics["calibration"] = _calibrate(
                run_dir, best_checkpoint, prepared, pre, details["predictions"]
            )
        metrics["best_epoch"] = best_metrics.get("epoch")
        metrics["epochs_run"] = epochs_run
        if spec.tune is not None:
            b = search.best_metrics
            # how the search went: a crashed trial is in the run's metrics, not only in tune/
            metrics["search"] = {
                "trials": b["trials"],
                "failed": len(b["failed"]),
                "retries": b["retries"],
                "failures": b["failed"],
            }
        if spec.evaluate.cross_validation is not None:
            from raydl.evaluate.crossval import cross_validate

            cv = spec.evaluate.cross_validation
            stage("cross-validate", f"{cv.method} ({cv.k} folds)" if cv.method == "kfold" else cv.method)
            metrics["cross_validation"] = cross_validate(spec, prepared, run_dir)["metrics"]
        run_dir.write_json(run_dir.metrics, metrics)
        if spec.compress is not None:
            from raydl.compress.stage import compress, test_arrays

            sel = spec.compress.select
            gate = f"gate: metric drop <= {sel.max_metric_drop}, prefer {sel.prefer}"
            display.stage("compress", ", ".join(spec.compress.techniques) + f"; {gate}")
            x, y = test_arrays(prepared.datasets["test"])
            compress(spec, run_dir, pre, x, y, display, prepared)
    from raydl.report import build_report

    stage("report", "report.html")
    with display.working("drawing the report"):
        build_report(run_dir.path)
    if publish_to:
        log.info("run directory published to %s", publish(run_dir, publish_to))
    display.metrics(metrics, spec.data.task)
    if spec.data.task == "regression":
        loss = spec.train.loss.type or "mse"
        display.note(regression_units(spec.data.label, pre.target_center, pre.target_scale, loss))
    display.done(run_dir.path)
    return RunResult(run_dir.path, metrics)


def _save_predictions(run_dir: RunDir, predictions: dict[str, Any]) -> None:
    """The test predictions (``y``, ``y_pred``, ``scores``; ``id``: the rows' names in the
    source, when it names them), for the report's ROC curves and for checking a served
    model against the run. Row names are stored as text or integers (no pickles)."""
    import numpy as np

    arrays = {k: np.asarray(v) for k, v in predictions.items() if v is not None}
    if "id" in arrays and arrays["id"].dtype == object:
        arrays["id"] = arrays["id"].astype(str)
    # no pickles: an object array left here is a bug, not something to load with pickle
    np.savez_compressed(run_dir.path / "predictions.npz", allow_pickle=False, **arrays)


def _calibrate(
    run_dir: Any, checkpoint: Any, prepared: Any, pre: Any, test: dict[str, Any]
) -> dict[str, Any]:
    """Fit the temperature on the val split's logits, write ``calibration.json`` (the
    Predictor applies it), and return it with the test ECE before and after."""
    from raydl.evaluate.calibration import calibrated, ece, fit_temperature
    from raydl.evaluate.evaluator import predict
    from raydl.predict import Predictor

    val = predict(Predictor.from_model(pre, load_model_dir(checkpoint)), prepared.datasets["val"])
    # log-probabilities are the logits up to a per-row shift, which softmax(z / T) ignores
    t = fit_temperature(np.log(np.clip(val["probabilities"], 1e-30, 1)), val["y"].astype(int))
    test_logp = np.log(np.clip(test["scores"], 1e-30, 1))
    y = np.asarray(test["y"]).astype(int)
    out = {
        "method": "temperature",
        "temperature": t,
        "fitted_on": "val",
        "ece_before": ece(calibrated(test_logp, 1.0), y),
        "ece_after": ece(calibrated(test_logp, t), y),
    }
    run_dir.write_json(run_dir.path / CALIBRATION, out)
    return out


def _checkpoint_epoch(checkpoint: Path) -> int | None:
    """The epoch (1-based) a checkpoint was saved at, from its loop state."""
    from raydl.train.checkpoint import TRAIN_STATE, read_train_state

    if not (Path(checkpoint) / TRAIN_STATE).is_file():
        return None
    return int(read_train_state(checkpoint)["epoch"])


def _search_detail(spec: JobSpec) -> str:
    t = spec.tune
    assert t is not None
    return f"{t.search} search, {t.num_samples} trials, scheduler {t.scheduler and t.scheduler.type}"


def _search_notes(best: dict[str, Any]) -> list[str]:
    """What the terminal says of a search's crashed trials (``tune/best.json``'s facts)."""
    failed, retries = best.get("failed", []), best.get("retries", 0)
    notes = []
    if retries:
        notes.append(f"search: {retries} trial crash(es) retried from the trial's last checkpoint")
    if failed:
        notes.append(
            f"search: {len(failed)} of {best['trials']} trials failed; "
            f"the best of the other {best['trials'] - len(failed)} was chosen"
        )
        notes += [f"  trial {f['trial']}: {f['error']}" for f in failed]
    return notes


def _search(spec: JobSpec, prepared, run_dir: RunDir, resume: bool):
    """The ``tune:`` stage: the best trial's checkpoint becomes the run's best checkpoint."""
    from raydl.tune.search import run_search

    search = run_search(spec, prepared, run_dir, resume=resume)
    run_dir.install(Path(search.best_checkpoint), run_dir.best_checkpoint)
    for row in search.best_epochs:  # the best trial's learning curves
        run_dir.append_metrics(row)
    return search


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
            class_names=names_for(spec, prepared.preprocessor.classes),
        )
    display.metrics(metrics, spec.data.task)
    return metrics


def compress_run(
    path: str | Path,
    overrides: list[str] | None = None,
    *,
    display: Display | None = None,
    verbose: bool = False,
) -> dict[str, Any]:
    """``raydl compress RUN_DIR``: see :func:`raydl.compress.stage.compress_run`; the
    report is rebuilt with the compression section."""
    from raydl.compress.stage import compress_run as run_stage
    from raydl.report import build_report

    result = run_stage(path, overrides, display=display, verbose=verbose)
    build_report(path)
    return result
