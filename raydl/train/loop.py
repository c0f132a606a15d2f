"""The per-worker training loop: what each Ray Train worker runs, top to bottom.

One epoch = every worker passes over its shard of the train split (streamed with
``iter_torch_batches``, or held as tensors when the split is cached: :mod:`raydl.train.batches`),
steps its DDP-wrapped model, then evaluates its shard of val; sums are all-reduced so
every worker sees the same global metrics, reports them (rank 0 with a checkpoint), and
takes the same early-stopping decision.
"""

from __future__ import annotations

import math
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import ray.train.torch
import torch
import torch.distributed as dist

from raydl.catalog import metric_mode
from raydl.data.augment import build_augment
from raydl.models import build_model
from raydl.models.resize import resize
from raydl.spec import EarlyStoppingSpec, JobSpec
from raydl.train import accumulation, adversarial, distill, objectives, optim, transfer
from raydl.train.batches import ShardBatches
from raydl.train.control import bad_step_reason, stop_message
from raydl.train.metrics import EpochMetrics
from raydl.train.optim import OPTIMIZERS, SCHEDULERS, build_loss
from raydl.train.session import TrainSession
from raydl.train.strategy import build_strategy


def _all_reduce(values: list[float], device: torch.device) -> list[float]:
    """Sum ``values`` over all workers (a no-op with one worker)."""
    t = torch.tensor(values, dtype=torch.float64, device=device)
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(t)
    return t.tolist()


def _all_reduce_max(value: float, device: torch.device) -> float:
    t = torch.tensor([value], dtype=torch.float64, device=device)
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return float(t.item())


def _autocast(precision: str, device: torch.device):
    if precision == "fp32":
        return nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def _run_epoch(
    strategy,
    shard,
    *,
    train: bool,
    loss_fn,
    task,
    batch_size,
    device,
    precision,
    on_bad_step="stop",
    grad_norm_limit=None,
    epoch=0,
    target_scale=1.0,
    shuffle_seed=None,
    observe=None,
    augment=None,
    attack=None,
) -> dict[str, Any]:
    """One pass over a shard; returns this worker's sums (loss, hits/errors, rows), and
    ``stop`` (a message) when a bad step ended training."""
    model = strategy.model
    model.train(train)
    loss_sum = hits = abs_err = sq_err = rows = scored = 0.0
    grad_norm_sum = steps = skipped = 0.0
    stop = None
    batches = shard.epoch(batch_size, device, train, shuffle_seed)  # shard: a ShardBatches
    waits = _Waits()  # time blocked on the data iterator: the step time data costs
    # train: windows of grad_accumulation micro-batches, one optimizer step each
    every = strategy.accumulate if train else 1
    step = 0  # optimizer steps (windows) so far
    with torch.set_grad_enabled(train):
        for window in accumulation.windows(waits.timed(batches), every):
            seen = []  # (out, y, loss, rows) per micro-batch, counted once the window is kept
            for i, batch in enumerate(window):
                x, y = batch["x"], batch.get("y")  # (B, *input_shape), (B,); no y: LM, VAE
                if augment is not None:  # train batches only; mixing makes y soft: (B, classes)
                    x, y = augment(x, y)
                if attack is not None:  # train.adversarial: a share of the rows made FGSM examples
                    x = attack(x, y)
                with strategy.micro_step(i == len(window) - 1) if train else nullcontext():
                    with _autocast(precision, device):
                        # out: (B, classes) or (B,) to score; None for a model with its own objective
                        out, loss = objectives.forward_loss(model, x, y, loss_fn, task)
                    if train:
                        strategy.backward(loss, len(window))
                seen.append((None if out is None else out.detach(), y, float(loss.detach()), len(x)))
            if train:  # the window's boundary: one norm, one bad-step check, one step
                step += 1
                norm = strategy.finish_window()  # the norm before clipping, when clipping
                if norm is None and not strategy.norm_after_step:
                    norm = strategy.grad_norm()
                if strategy.handles_overflow and norm is not None and not math.isfinite(norm):
                    norm = None  # fp16 loss scaling skips overflowing steps and lowers its scale
                reason = bad_step_reason(norm, grad_norm_limit)
                if reason is None:
                    strategy.step()
                    if strategy.norm_after_step:  # DeepSpeed computes it inside its step
                        norm = strategy.grad_norm()
                        reason = bad_step_reason(norm, grad_norm_limit)
                if reason is not None:
                    if on_bad_step == "stop" or strategy.norm_after_step:
                        stop = stop_message(epoch, step, reason)
                        break
                    strategy.skip()
                    skipped += 1
                    continue
                if norm is not None:
                    grad_norm_sum += norm
                    steps += 1
            for out, y, loss_value, n in seen:
                if observe is not None and out is not None:
                    observe(out, y)
                rows += n
                loss_sum += loss_value * n
                scored += n if out is not None else 0  # language model, VAE: nothing to score
                if out is None:
                    pass
                elif task == "classification":
                    hits += float((out.argmax(-1) == (y.argmax(-1) if y.dim() > 1 else y)).sum())
                else:  # errors in the target's original units
                    err = (out.float() - y) * target_scale
                    abs_err += float(err.abs().sum())
                    sq_err += float((err**2).sum())
    return {
        "loss": loss_sum,
        "hits": hits,
        "abs": abs_err,
        "sq": sq_err,
        "rows": rows,
        "scored": scored,
        "grad_norm": grad_norm_sum / max(steps, 1) if steps else None,
        "skipped": skipped,
        "stop": stop,
        "data_wait": waits.seconds,
        "first_batch_at": waits.first_at,
    }


class _Waits:
    """How long a pass waited for its batches (seconds blocked in the iterator) and when
    its first batch arrived (wall clock)."""

    def __init__(self) -> None:
        self.seconds, self.first_at = 0.0, None

    def timed(self, batches):
        it = iter(batches)
        while True:
            started = time.perf_counter()
            try:
                batch = next(it)
            except StopIteration:
                return
            self.seconds += time.perf_counter() - started
            if self.first_at is None:
                self.first_at = time.time()
            yield batch


def _global_metrics(prefix: str, sums: dict[str, float], task: str, device) -> dict[str, float]:
    loss, hits, abs_err, sq_err, rows, scored = _all_reduce(
        [sums["loss"], sums["hits"], sums["abs"], sums["sq"], sums["rows"], sums.get("scored", sums["rows"])],
        device,
    )
    rows = max(rows, 1.0)
    out = {f"{prefix}_loss": loss / rows}
    out.update(objectives.extra_metrics(prefix, loss / rows, task))
    if scored and task == "classification" and prefix == "train":
        out[f"{prefix}_accuracy"] = hits / scored
    return out


def epoch_seed(seed: int, epoch: int, rank: int) -> int:
    """The seed of one worker's epoch: its shuffle, dropout and augmentation draw from it,
    so an epoch replayed after a restart draws what it drew the first time."""
    return int(np.random.SeedSequence([seed, epoch, rank]).generate_state(1)[0])


def _early_stop(state: dict[str, Any], metrics: dict[str, Any], es: EarlyStoppingSpec | None) -> bool:
    """Track the best value of ``es.metric`` in ``state``; True once ``es.patience`` epochs
    passed without an improvement of more than ``es.min_delta``."""
    if es is None:
        return False
    value, best = metrics[es.metric], state["best"]
    if metric_mode(es.metric, es.mode) == "min":
        improved = best is None or value < best - es.min_delta
    else:
        improved = best is None or value > best + es.min_delta
    state["best"], state["stale"] = (value, 0) if improved else (best, state["stale"] + 1)
    return bool(state["stale"] >= es.patience)


def train_loop_per_worker(config: dict[str, Any], session=None) -> None:
    """Ray Train entry point. ``config`` holds the resolved spec and the data facts that
    preprocessing found (input shape, outputs, train rows, target scale). ``session``:
    where the loop runs (:mod:`raydl.train.session`); a Ray Train worker by default."""
    loop_started_at = time.time()  # startup facts, reported with the loop's first epoch
    session = session or TrainSession()
    spec = JobSpec.model_validate(config["spec"])
    t, task = spec.train, spec.data.task
    rank, world = session.rank, session.world
    device = session.device

    # Same seed on every rank: identical initial weights (DDP also broadcasts them).
    torch.manual_seed(spec.seed)
    if t.deterministic and device.type == "cuda":
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    model = build_model(
        spec.model.arch,
        config["input_shape"],
        config["num_outputs"],
        transfer.builder_params(spec.model),
        config["model_config"].get("data_info"),
    )
    if config.get("shapes"):  # a structurally pruned model, fine-tuned from its weights
        resize(model, config["shapes"])
    transfer.load_weights(model, spec.model)
    transfer.freeze(model, spec.model.pretrained.freeze)
    augment = build_augment(
        spec.data.augment,
        config["input_shape"],
        config["num_outputs"],
        config["model_config"].get("data_info") or {},
    )
    optimizer = OPTIMIZERS.get(t.optimizer.type)(model.parameters(), t.optimizer)

    per_worker_batch = max(1, t.batch_size // world)
    # streaming_split(equal=True) gives every worker the same number of rows; the
    # schedule counts optimizer steps: one per window of grad_accumulation micro-batches
    batches_per_epoch = max(1, math.ceil((config["train_rows"] // world) / per_worker_batch))
    steps_per_epoch = accumulation.optimizer_steps(batches_per_epoch, t.grad_accumulation)
    scheduler = SCHEDULERS.get(t.scheduler.type)(
        optimizer,
        t.scheduler,
        total_steps=steps_per_epoch * t.epochs,
        steps_per_epoch=steps_per_epoch,
    )
    # DDP (+ GradScaler for fp16) or DeepSpeed ZeRO: wraps the model, steps, checkpoints
    strategy = build_strategy(model, optimizer, scheduler, t, world, prepare=session.prepare_model)
    loss_fn = build_loss(t.loss, task, config.get("class_weights")).to(device)
    attack = None  # train.adversarial: FGSM rows against the model at each step, by the labels' loss
    if (adv := t.adversarial) is not None:
        attack = adversarial.AdversarialBatches(strategy.module, loss_fn, adv.epsilon, adv.share)
    if config.get("distill"):  # a student: the run's model teaches it, loaded here in the worker
        loss_fn = distill.teacher_loss(config["distill"], loss_fn, device)

    val_metrics = EpochMetrics(task, spec.evaluate.metrics, config["num_outputs"], config["target_scale"])
    state: dict[str, Any] = {"epoch": 0, "best": None, "stale": 0}
    # A restarted worker group (a worker died) or `raydl run --resume`: Ray Train hands
    # back the run's latest checkpoint; continue at its epoch with its optimizer,
    # scheduler and scaler state, not from epoch 1.
    resume = session.checkpoint()
    resumed_from = None
    if resume is not None:
        with resume.as_directory() as d:
            state = strategy.load(Path(d))
        session.restored(strategy, t)  # PBT: another trial's state, this trial's values
        resumed_from = state["epoch"]

    # a cached split's piece is held as tensors after its first pass; others stream
    held = config.get("held", ())
    train_shard = ShardBatches(session.dataset("train"), hold="train" in held)
    val_shard = ShardBatches(session.dataset("val"), hold="val" in held)
    common = dict(
        loss_fn=loss_fn,
        task=task,
        batch_size=per_worker_batch,
        device=device,
        precision=t.precision,
        target_scale=config["target_scale"],
    )
    first = state["epoch"]
    for epoch in range(first, t.epochs):
        if transfer.unfreeze_now(spec.model, epoch, first):  # staged fine-tuning
            transfer.unfreeze(strategy.module)
            if world > 1:  # DDP registers trainable parameters when it wraps: wrap again
                strategy.model = ray.train.torch.prepare_model(strategy.module)
        started = time.perf_counter()
        seed = epoch_seed(spec.seed, epoch, rank)
        if t.deterministic:  # dropout and other torch draws: the same after a restart
            torch.manual_seed(seed)
        if augment is not None:
            augment.start_epoch(spec.seed, epoch, rank)
        sums = _run_epoch(
            strategy,
            train_shard,
            train=True,
            on_bad_step=t.on_bad_step,
            grad_norm_limit=t.grad_norm_limit,
            epoch=epoch + 1,
            shuffle_seed=seed,
            augment=augment,
            attack=attack,
            **common,
        )
        if sums["stop"]:  # every rank saw the same global gradient norm and stops here
            session.report({"epoch": epoch + 1, "bad_step": sums["stop"]})
            if rank == 0 and config.get("progress") is not None:
                config["progress"].put_nowait({"epoch": epoch + 1, "bad_step": sums["stop"]})
            return
        train_seconds = time.perf_counter() - started
        metrics = _global_metrics("train", sums, task, device)
        strategy.sync_buffers()  # validate the model the checkpoint holds: rank 0's buffers
        val_sums = _run_epoch(strategy, val_shard, train=False, observe=val_metrics.observe, **common)
        metrics.update(_global_metrics("val", val_sums, task, device))
        if val_sums["scored"]:  # a language model or VAE has nothing to score
            metrics.update(val_metrics.results("val"))  # torchmetrics, synced over the workers
        metrics.update(
            epoch=epoch + 1,
            lr=strategy.lr(),
            # the slowest worker sets the pace: max over workers of the train pass time
            train_seconds=_all_reduce_max(train_seconds, device),
            epoch_seconds=_all_reduce_max(time.perf_counter() - started, device),
        )
        metrics["train_samples_per_s"] = _all_reduce([sums["rows"]], device)[0] / metrics["train_seconds"]
        # the share of the slowest worker's train pass spent waiting for data
        metrics["data_wait_share"] = _all_reduce_max(sums["data_wait"], device) / metrics["train_seconds"]
        if epoch == first:  # when this process entered the loop and got its first batch
            metrics.update(loop_started_at=loop_started_at, first_batch_at=sums["first_batch_at"])
        if sums["grad_norm"] is not None:  # mean global norm over the epoch's steps (pre-clip)
            metrics["grad_norm"] = sums["grad_norm"]
        if t.on_bad_step == "skip":
            metrics["skipped_steps"] = sums["skipped"]
        if resumed_from is not None:
            metrics["resumed_from_epoch"] = resumed_from
        optim.epoch_end(scheduler, metrics, t.scheduler)  # plateau: once per epoch

        # Early stopping: every rank sees the same all-reduced metrics; rank 0 decides
        # and broadcasts, so no rank can leave the loop alone and hang the others.
        stop = _early_stop(state, metrics, t.early_stopping)
        stop = bool(_all_reduce([float(stop and rank == 0)], device)[0])
        metrics["stopped_early"] = stop

        state["epoch"] = epoch + 1
        # Every `checkpoint.every` epochs, and always at the end; Ray Train keeps the
        # `keep` best by metric plus the latest (what a restart resumes from).
        save_now = stop or epoch + 1 == t.epochs or (epoch + 1) % t.checkpoint.every == 0
        with tempfile.TemporaryDirectory() as tmp:
            saved = save_now and strategy.save(Path(tmp), rank, config["model_config"], state)
            session.report(metrics, Path(tmp) if saved else None)
        if rank == 0 and config.get("progress") is not None:
            config["progress"].put_nowait(metrics)
        if stop:
            break
