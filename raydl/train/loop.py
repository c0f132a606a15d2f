"""The per-worker training loop: what each Ray Train worker runs, top to bottom.

One epoch = every worker streams its shard of the train split (``iter_torch_batches``),
steps its DDP-wrapped model, then evaluates its shard of val; sums are all-reduced so
every worker sees the same global metrics, reports them (rank 0 with a checkpoint), and
takes the same early-stopping decision.
"""

from __future__ import annotations

import math
import tempfile
import time
from contextlib import nullcontext
from typing import Any

import ray.train
import ray.train.torch
import torch
import torch.distributed as dist

from raydl.checks import metric_mode
from raydl.models import build_model
from raydl.spec import EarlyStoppingSpec, JobSpec
from raydl.train import accumulation, objectives, optim, transfer
from raydl.train import checkpoint as ckpt
from raydl.train.optim import OPTIMIZERS, SCHEDULERS, build_loss


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
    model,
    shard,
    *,
    train: bool,
    loss_fn,
    task,
    batch_size,
    device,
    precision,
    optimizer=None,
    scheduler=None,
    scaler=None,
    grad_clip=None,
    target_scale=1.0,
    shuffle_seed=None,
    accumulate=1,
) -> dict[str, float]:
    """One pass over a shard; returns this worker's sums (loss, hits/errors, rows)."""
    model.train(train)
    loss_sum = hits = abs_err = sq_err = rows = scored = 0.0
    grad_norm_sum = steps = 0.0
    batches = shard.iter_torch_batches(
        batch_size=batch_size,
        device=device,
        local_shuffle_buffer_size=4 * batch_size if train else None,
        local_shuffle_seed=shuffle_seed,
    )
    if train:
        optimizer.zero_grad(set_to_none=True)
    with torch.set_grad_enabled(train):
        for i, (batch, last) in enumerate(accumulation.with_last(batches)):
            x, y = batch["x"], batch.get("y")  # (B, *input_shape), (B,)
            step_now = train and accumulation.is_step(i, last, accumulate)
            with accumulation.sync_context(model, step_now or not train):
                with _autocast(precision, device):
                    out, loss = objectives.forward_loss(model, x, y, loss_fn, task)
                if train:  # micro-batches add up to the mean over the window
                    scaled = loss / accumulate
                    # fp16: scale the loss so small gradients survive
                    (scaler.scale(scaled) if scaler is not None else scaled).backward()
            if step_now:
                if scaler is not None:
                    scaler.unscale_(optimizer)
                if grad_clip:
                    norm = torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
                    grad_norm_sum += float(norm)
                steps += 1
                if scaler is not None:
                    scaler.step(optimizer)
                    scaler.update()
                else:
                    optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                if optim.steps_per_batch(scheduler):
                    scheduler.step()
            n = len(x)
            rows += n
            loss_sum += float(loss.detach()) * n
            scored += n if out is not None else 0  # language model, VAE: nothing to score
            if out is None:
                pass
            elif task == "classification":
                hits += float((out.argmax(-1) == y).sum())
            else:  # errors in the target's original units
                err = (out.detach().float() - y) * target_scale
                abs_err += float(err.abs().sum())
                sq_err += float((err**2).sum())
    return {
        "loss": loss_sum,
        "hits": hits,
        "abs": abs_err,
        "sq": sq_err,
        "rows": rows,
        "scored": scored,
        "grad_norm": grad_norm_sum / max(steps, 1),
    }


def _global_metrics(prefix: str, sums: dict[str, float], task: str, device) -> dict[str, float]:
    loss, hits, abs_err, sq_err, rows, scored = _all_reduce(
        [sums["loss"], sums["hits"], sums["abs"], sums["sq"], sums["rows"], sums.get("scored", sums["rows"])],
        device,
    )
    rows = max(rows, 1.0)
    out = {f"{prefix}_loss": loss / rows}
    out.update(objectives.extra_metrics(prefix, loss / rows, task))
    if not scored:
        pass
    elif task == "classification":
        out[f"{prefix}_accuracy"] = hits / scored
    elif prefix == "val":
        out[f"{prefix}_mae"] = abs_err / rows
        out[f"{prefix}_rmse"] = math.sqrt(sq_err / rows)
    return out


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


def train_loop_per_worker(config: dict[str, Any]) -> None:
    """Ray Train entry point. ``config`` holds the resolved spec and the data facts that
    preprocessing found (input shape, outputs, train rows, target scale)."""
    spec = JobSpec.model_validate(config["spec"])
    t, task = spec.train, spec.data.task
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    device = ray.train.torch.get_device()

    # Same seed on every rank: identical initial weights (DDP also broadcasts them).
    torch.manual_seed(spec.seed)
    model = build_model(
        spec.model.arch,
        config["input_shape"],
        config["num_outputs"],
        transfer.builder_params(spec.model),
        config["model_config"].get("data_info"),
    )
    transfer.load_weights(model, spec.model)
    transfer.freeze(model, spec.model.pretrained.freeze)
    model = ray.train.torch.prepare_model(model)  # to device; DDP when world > 1
    optimizer = OPTIMIZERS.get(t.optimizer.type)(model.parameters(), t.optimizer)

    per_worker_batch = max(1, t.batch_size // world)
    # streaming_split(equal=True) gives every worker the same number of rows
    batches_per_epoch = max(1, math.ceil((config["train_rows"] // world) / per_worker_batch))
    steps_per_epoch = accumulation.optimizer_steps(batches_per_epoch, t.grad_accumulation)
    scheduler = SCHEDULERS.get(t.scheduler.type)(
        optimizer,
        t.scheduler,
        total_steps=steps_per_epoch * t.epochs,
        steps_per_epoch=steps_per_epoch,
    )
    scaler = torch.amp.GradScaler("cuda") if t.precision == "fp16" else None
    loss_fn = build_loss(t.loss, task, config.get("class_weights")).to(device)

    state: dict[str, Any] = {"epoch": 0, "best": None, "stale": 0}
    resume = ray.train.get_checkpoint()
    if resume is not None:  # a restarted worker group: continue where the checkpoint was
        with resume.as_directory() as d:
            state = ckpt.load_train_state(d, ckpt.unwrap(model), optimizer, scheduler, scaler)

    train_shard = ray.train.get_dataset_shard("train")
    val_shard = ray.train.get_dataset_shard("val")
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
            transfer.unfreeze(ckpt.unwrap(model))
            if world > 1:  # DDP registers trainable parameters when it wraps: wrap again
                model = ray.train.torch.prepare_model(ckpt.unwrap(model))
        started = time.perf_counter()
        sums = _run_epoch(
            model,
            train_shard,
            train=True,
            optimizer=optimizer,
            scheduler=scheduler,
            scaler=scaler,
            grad_clip=t.grad_clip,
            shuffle_seed=spec.seed * 1000 + epoch * world + rank,
            accumulate=t.grad_accumulation,
            **common,
        )
        train_seconds = time.perf_counter() - started
        metrics = _global_metrics("train", sums, task, device)
        metrics.update(
            _global_metrics("val", _run_epoch(model, val_shard, train=False, **common), task, device)
        )
        metrics.update(
            epoch=epoch + 1,
            lr=optimizer.param_groups[0]["lr"],
            # the slowest worker sets the pace: max over workers of the train pass time
            train_seconds=_all_reduce_max(train_seconds, device),
            epoch_seconds=_all_reduce_max(time.perf_counter() - started, device),
        )
        metrics["train_samples_per_s"] = _all_reduce([sums["rows"]], device)[0] / metrics["train_seconds"]
        if t.grad_clip:
            metrics["grad_norm"] = sums["grad_norm"]
        optim.epoch_end(scheduler, metrics, t.scheduler)  # plateau: once per epoch

        # Early stopping: every rank sees the same all-reduced metrics; rank 0 decides
        # and broadcasts, so no rank can leave the loop alone and hang the others.
        stop = _early_stop(state, metrics, t.early_stopping)
        stop = bool(_all_reduce([float(stop and rank == 0)], device)[0])
        metrics["stopped_early"] = stop

        state["epoch"] = epoch + 1
        with tempfile.TemporaryDirectory() as tmp:
            checkpoint = None
            if rank == 0:
                ckpt.save(
                    tmp,
                    ckpt.unwrap(model),
                    config["model_config"],
                    train_state=state,
                    optimizer=optimizer,
                    scheduler=scheduler,
                    scaler=scaler,
                )
                checkpoint = ray.train.Checkpoint.from_directory(tmp)
            ray.train.report(metrics, checkpoint=checkpoint)
        if rank == 0 and config.get("progress") is not None:
            config["progress"].put_nowait(metrics)
        if stop:
            break
