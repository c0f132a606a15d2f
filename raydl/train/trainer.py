"""The driver side of training: build the TorchTrainer from the spec, follow its epochs,
and keep the best checkpoint in the run directory."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray
import ray.data
from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
from ray.train.torch import TorchTrainer
from ray.util.queue import Queue

from raydl.catalog import metric_mode
from raydl.data.prepare import PreparedData
from raydl.errors import RaydlError
from raydl.rundir import RunDir
from raydl.spec import JobSpec
from raydl.train import transfer
from raydl.train.batches import held_splits
from raydl.train.control import BadStepError
from raydl.train.ingest import ingest_config
from raydl.train.loop import train_loop_per_worker
from raydl.train.tracking import Tracker

RUN_NAME = "train"  # Ray Train's run folder inside the run directory's ray/

#: How often Ray Train's controller polls its workers (``RAY_TRAIN_HEALTH_CHECK_INTERVAL_S``,
#: 2 s by default), unless the environment already says. Each poll takes at most one report
#: from a worker, and a worker's ``ray.train.report`` waits for its previous report to be
#: taken (a queue of one): an epoch shorter than the interval waits out the rest of it, and
#: the run's end is seen up to one interval late: the digits job (9 epochs of about 0.5 s)
#: took 62.9 s at 2 s and 50.3 s at 0.2 s (benchmarks/report_poll.py, 2026-12-06). A poll is
#: one small actor call per worker. The driver's value reaches the controller (Ray Train
#: propagates it).
POLL_INTERVAL_S = "0.2"


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


def loop_config(
    spec: JobSpec,
    prepared: PreparedData,
    progress: Queue | None = None,
    shapes: dict[str, list[int]] | None = None,
    distill: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """What the training loop is given: the resolved spec and the data facts (and, to
    fine-tune a structurally pruned model, the pruned tensor shapes; to distill a
    student, its teacher: :func:`raydl.train.distill.teacher_loss`)."""
    pre = prepared.preprocessor
    return {
        "shapes": shapes or {},
        "distill": distill,
        "spec": spec.model_dump(mode="json"),
        "input_shape": pre.input_shape,
        "num_outputs": pre.num_outputs,
        "target_scale": pre.target_scale,
        "train_rows": prepared.report["split"]["rows"]["train"],
        # the cached splits each worker holds as tensors after one read
        "held": held_splits(prepared.datasets, spec.train.workers),
        "model_config": model_config(spec, prepared),
        # data.balance: class_weights — the loss weighs classes by them
        "class_weights": getattr(pre, "class_weights", None),
        "progress": progress,
    }


def torch_trainer(
    spec: JobSpec,
    prepared: PreparedData,
    storage_path: str,
    name: str,
    progress: Queue | None = None,
    callbacks: list | None = None,
    shapes: dict[str, list[int]] | None = None,
    distill: dict[str, Any] | None = None,
) -> TorchTrainer:
    """The TorchTrainer that runs the training loop of ``spec`` (also each search trial)."""
    t = spec.train
    os.environ.setdefault("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", POLL_INTERVAL_S)  # read by fit()
    gpus = ray.cluster_resources().get("GPU", 0)
    if t.use_gpu and gpus < t.workers:
        raise RaydlError(
            f"train.use_gpu: {t.workers} workers need one GPU each; this Ray cluster has {gpus:g}. "
            "Set train.use_gpu: false (CPU: gloo, bf16 or fp32) or join a cluster with GPUs"
        )
    datasets: dict[str, Any] = {"train": prepared.datasets["train"], "val": prepared.datasets["val"]}
    return TorchTrainer(
        train_loop_per_worker,
        train_loop_config=loop_config(spec, prepared, progress, shapes, distill),
        scaling_config=ScalingConfig(
            num_workers=t.workers,
            use_gpu=t.use_gpu,
            resources_per_worker={"CPU": t.cpus_per_worker, **({"GPU": 1} if t.use_gpu else {})},
        ),
        run_config=RunConfig(
            name=name,
            storage_path=storage_path,
            checkpoint_config=CheckpointConfig(
                num_to_keep=t.checkpoint.keep,
                checkpoint_score_attribute=t.checkpoint.metric,
                checkpoint_score_order=metric_mode(t.checkpoint.metric, t.checkpoint.mode),
            ),
            failure_config=FailureConfig(max_failures=t.max_failures),
            callbacks=callbacks,
        ),
        datasets=datasets,
        dataset_config=ingest_config(t.deterministic, datasets, t.workers),
    )


def fit(
    spec: JobSpec,
    prepared: PreparedData,
    run: RunDir,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
    shapes: dict[str, list[int]] | None = None,
    distill: dict[str, Any] | None = None,
) -> TrainResult:
    """Train on Ray Train; every epoch's metrics go to ``metrics.jsonl`` and ``on_epoch``.
    ``shapes``: the tensor shapes of a structurally pruned model of ``spec.model`` (the
    compression stage's fine-tune; its weights come from ``model.pretrained.path``).
    ``distill``: ``spec.model`` is a student learning from a teacher (``{teacher: model
    folder, temperature, alpha}``; the compression stage's distillation).

    Raises:
        RaydlError: a worker failed on the user's input (e.g. a model that cannot be built).
    """
    metric = spec.train.checkpoint.metric
    mode = metric_mode(metric, spec.train.checkpoint.mode)
    if in_driver(spec):
        return _fit_in_driver(spec, prepared, run, on_epoch, shapes, distill)
    # on the driver's own node: anywhere else, losing that node would lose the queue and
    # fail the run that Ray Train's restart (train.max_failures) had saved
    progress = Queue(actor_options={"num_cpus": 0, "scheduling_strategy": _this_node()})
    trainer = torch_trainer(
        spec, prepared, str(run.ray_storage), RUN_NAME, progress=progress, shapes=shapes, distill=distill
    )

    # The loop's rank 0 puts each epoch's metrics on a queue; a thread here writes them
    # to metrics.jsonl and the progress display while fit() blocks. It waits in the
    # queue's actor until a row comes, and leaves at the None put after fit(): a get with
    # a timeout, again and again, kept the actor and the driver busy beside the workers
    # (queue actor and driver: 0.69 core-s in 30 s, against 0.36 for one waiting get; 2026-12-07).
    epochs: list[dict[str, Any]] = []
    tracker = Tracker(spec, run)

    def follow() -> None:
        while True:
            try:
                row = progress.get()
            except ray.exceptions.RayError:  # the queue's actor is gone (a lost node):
                return  # fit() raises what happened
            if row is None:  # fit() has ended; rank 0's puts all came before (each waits)
                return
            epochs.append(row)
            run.append_metrics(row)
            tracker.log(row)
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
        with contextlib.suppress(ray.exceptions.RayError):  # the follower's end
            progress.actor.put_nowait.remote(None)  # type: ignore[attr-defined]
        follower.join(timeout=10)
        tracker.close()
        with contextlib.suppress(ray.exceptions.RayError):  # gone already with a lost head
            ray.kill(progress.actor)  # type: ignore[arg-type]

    stopped = next((row["bad_step"] for row in epochs if "bad_step" in row), None)
    if stopped:
        raise BadStepError(stopped)
    best = result.get_best_checkpoint(metric, mode) if result.best_checkpoints else None
    if best is None:
        raise RaydlError("train: the run reported no checkpoint")
    best_metrics = next(m for c, m in result.best_checkpoints or [] if c.path == best.path)
    with best.as_directory() as d:
        run.install(Path(d), run.best_checkpoint)
    # a restarted or resumed run logs the epochs after its checkpoint again: count each once
    epochs_run = len({row["epoch"] for row in run.read_metrics_log()})
    return TrainResult(run.best_checkpoint, dict(best_metrics), epochs_run)


def _this_node() -> Any:
    """A scheduling strategy that pins an actor to the driver's node."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    return NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)


def in_driver(spec: JobSpec) -> bool:
    """Whether the run trains in the driver's own process (:class:`DriverSession`) rather
    than a Ray Train worker group: one DDP worker on a one-node cluster, on CPU, with no
    worker restarts to survive. Nothing there for a worker group to distribute, place or
    restart; it would cost a controller, a worker process and dataset coordinators
    (about 20 s on 2 cores) per run. A GPU, ``max_failures``, DeepSpeed or a multi-node
    cluster keep the worker group."""
    t = spec.train
    if t.workers != 1 or t.strategy != "ddp" or t.use_gpu or t.max_failures:
        return False
    return sum(1 for node in ray.nodes() if node.get("Alive")) == 1


def _fit_in_driver(
    spec: JobSpec,
    prepared: PreparedData,
    run: RunDir,
    on_epoch: Callable[[dict[str, Any]], None] | None,
    shapes: dict[str, list[int]] | None,
    distill: dict[str, Any] | None = None,
) -> TrainResult:
    """:func:`fit` for a run :func:`in_driver`: the same loop and checkpoints, the same
    metrics log and display, in this process. torch gets the threads a worker would
    (``train.cpus_per_worker``), so Ray Data's tasks keep the rest."""
    import torch

    from raydl.train.session import DriverSession

    t = spec.train
    tracker = Tracker(spec, run)
    epochs: list[dict[str, Any]] = []

    def take(row: dict[str, Any]) -> None:
        epochs.append(row)
        run.append_metrics(row)
        tracker.log(row)
        if on_epoch:
            on_epoch(row)

    folder = run.ray_storage / RUN_NAME
    folder.mkdir(parents=True, exist_ok=True)
    session = DriverSession(
        {"train": prepared.datasets["train"], "val": prepared.datasets["val"]},
        folder,
        keep=t.checkpoint.keep,
        metric=t.checkpoint.metric,
        mode=metric_mode(t.checkpoint.metric, t.checkpoint.mode),
        on_report=take,
    )
    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, int(t.cpus_per_worker)))
    try:
        train_loop_per_worker(loop_config(spec, prepared, shapes=shapes, distill=distill), session)
    finally:
        torch.set_num_threads(threads)
        tracker.close()
    stopped = next((row["bad_step"] for row in epochs if "bad_step" in row), None)
    if stopped:
        raise BadStepError(stopped)
    best = session.best()
    if best is None:
        raise RaydlError("train: the run reported no checkpoint")
    run.install(Path(best[0]), run.best_checkpoint)
    epochs_run = len({row["epoch"] for row in run.read_metrics_log()})
    return TrainResult(run.best_checkpoint, dict(best[1]), epochs_run)


def has_checkpoint(run: RunDir) -> bool:
    """Whether Ray Train left a checkpoint of this run to resume from (it restores the
    latest one by itself when a run reuses the same storage folder and name)."""
    return any((run.ray_storage / RUN_NAME).glob("checkpoint_*/model.json"))
