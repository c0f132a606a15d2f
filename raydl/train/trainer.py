"""The driver side of training: build the TorchTrainer from the spec, follow its epochs,
and keep the best checkpoint in the run directory."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray
from ray.train import CheckpointConfig, DataConfig, FailureConfig, RunConfig, ScalingConfig
from ray.train.torch import TorchTrainer
from ray.util.queue import Empty, Queue

from raydl.checks import metric_mode
from raydl.data.prepare import PreparedData
from raydl.errors import RaydlError
from raydl.rundir import RunDir
from raydl.spec import JobSpec
from raydl.train import transfer
from raydl.train.loop import train_loop_per_worker


@dataclass
class TrainResult:
    best_checkpoint: Path
    best_metrics: dict[str, Any]
    epochs_run: int


def model_config(spec: JobSpec, prepared: PreparedData) -> dict[str, Any]:
    """What a checkpoint needs to rebuild its model without the spec."""
    return {
        "arch": spec.model.arch,
        "params": transfer.builder_params(spec.model),
        "input_shape": prepared.preprocessor.input_shape,
        "num_outputs": prepared.preprocessor.num_outputs,
        "data_info": prepared.preprocessor.data_info,
    }


def _user_error(error: BaseException) -> RaydlError | None:
    """The RaydlError a worker raised, if that is what failed the run."""
    seen: set[int] = set()
    stack: list[BaseException | None] = [error]
    while stack:
        e = stack.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, RaydlError):
            return e
        stack += [e.__cause__, e.__context__, getattr(e, "cause", None)]
        stack += list(getattr(e, "worker_failures", {}).values())
    return None


def fit(
    spec: JobSpec,
    prepared: PreparedData,
    run: RunDir,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
) -> TrainResult:
    """Train on Ray Train; every epoch's metrics go to ``metrics.jsonl`` and ``on_epoch``.

    Raises:
        RaydlError: a worker failed on the user's input (e.g. a model that cannot be built).
    """
    t = spec.train
    metric = t.checkpoint.metric
    mode = metric_mode(metric, t.checkpoint.mode)
    progress = Queue(actor_options={"num_cpus": 0})
    pre = prepared.preprocessor
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config={
            "spec": spec.model_dump(mode="json"),
            "input_shape": pre.input_shape,
            "num_outputs": pre.num_outputs,
            "target_scale": pre.target_scale,
            "train_rows": prepared.report["split"]["rows"]["train"],
            "model_config": model_config(spec, prepared),
            # data.balance: class_weights — the loss weighs classes by them
            "class_weights": getattr(pre, "class_weights", None),
            "progress": progress,
        },
        scaling_config=ScalingConfig(
            num_workers=t.workers,
            use_gpu=t.use_gpu,
            resources_per_worker={"CPU": t.cpus_per_worker, **({"GPU": 1} if t.use_gpu else {})},
        ),
        run_config=RunConfig(
            name="train",
            storage_path=str(run.ray_storage),
            checkpoint_config=CheckpointConfig(
                num_to_keep=t.checkpoint.keep,
                checkpoint_score_attribute=metric,
                checkpoint_score_order=mode,
            ),
            failure_config=FailureConfig(max_failures=t.max_failures),
        ),
        datasets={"train": prepared.datasets["train"], "val": prepared.datasets["val"]},
        dataset_config=DataConfig(datasets_to_split="all"),
    )

    # The loop's rank 0 puts each epoch's metrics on a queue; a thread here writes them
    # to metrics.jsonl and the progress display while fit() blocks.
    done = threading.Event()
    epochs: list[dict[str, Any]] = []

    def follow() -> None:
        while not (done.is_set() and progress.empty()):
            try:
                row = progress.get(timeout=0.5)
            except Empty:
                continue
            epochs.append(row)
            run.append_metrics(row)
            if on_epoch:
                on_epoch(row)

    follower = threading.Thread(target=follow, name="raydl-progress", daemon=True)
    follower.start()
    try:
        result = trainer.fit()
    except SystemExit as e:
        # Ray Train's own SIGINT handler aborts the run, then leaves by sys.exit: this
        # is the user's Ctrl-C, so let it read as one.
        raise KeyboardInterrupt from e
    except Exception as e:  # Ray wraps worker errors; show the user's own as such
        user = _user_error(e)
        if user is not None:
            raise user from e
        raise
    finally:
        done.set()
        follower.join(timeout=10)
        ray.kill(progress.actor)  # type: ignore[arg-type]

    best = result.get_best_checkpoint(metric, mode) if result.best_checkpoints else None
    if best is None:
        raise RaydlError("train: the run reported no checkpoint")
    best_metrics = next(m for c, m in result.best_checkpoints or [] if c.path == best.path)
    if run.best_checkpoint.exists():
        shutil.rmtree(run.best_checkpoint)
    with best.as_directory() as d:
        shutil.copytree(d, run.best_checkpoint)
    return TrainResult(run.best_checkpoint, dict(best_metrics), len(epochs))
