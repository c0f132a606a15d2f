"""Distributed strategies: how a worker wraps its model, takes an optimizer step and
saves/restores its training state. Chosen by ``train.strategy`` from the strategy family
(:data:`raydl.catalog.STRATEGIES`, which also says what each needs installed).

ddp        torch DistributedDataParallel through Ray Train's ``prepare_model``: gloo on
           CPU, NCCL on GPU (Ray Train picks the backend from ``use_gpu``). Precision:
           fp32, bf16 autocast (CPU and GPU), fp16 autocast + GradScaler (GPU only).
deepspeed  DeepSpeed ZeRO stage 1, 2 or 3 (``train.zero_stage``) over the process group
           Ray Train already set up. Its JSON config is *derived* from the spec by
           :func:`deepspeed_config` (batch size per worker, gradient clipping, bf16/fp16,
           ZeRO stage), never written by hand; the optimizer is the spec's own torch
           optimizer (DeepSpeed's fused CPU Adam would compile C++ for about a minute).
           fp16 needs a GPU (DeepSpeed's loss scaling runs on CUDA); bf16 runs on CPU
           and GPU. The first DeepSpeed run on a machine compiles a small C++
           communication op (about 30 s, cached afterwards).

Every strategy hands the loop one object with the same few methods, so the loop reads
the same whatever the strategy. Gradient accumulation (``train.grad_accumulation: k``,
see :mod:`raydl.train.accumulation`): the loop runs each micro-batch's forward and
backward inside ``micro_step(boundary)`` with ``backward(loss, window)``, and only at a
window's boundary reads the gradient norm, checks for a bad step and calls ``step()`` or
``skip()`` (which also zero the gradients for the next window).
"""

from __future__ import annotations

import math
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from raydl import artifacts
from raydl.catalog import STRATEGIES
from raydl.checks import requirements_problems
from raydl.errors import RaydlError
from raydl.spec import TrainSpec
from raydl.train import checkpoint as ckpt
from raydl.train import optim
from raydl.train.accumulation import sync_context

DEEPSPEED_DIR = "deepspeed"  # DeepSpeed's own sharded state, inside a checkpoint
_TAG = "state"
__all__ = ["DDPStrategy", "DeepSpeedStrategy", "build_strategy", "deepspeed_config", "requirements_problems"]


def deepspeed_config(t: TrainSpec, world_size: int) -> dict[str, Any]:
    """DeepSpeed's config, derived from the spec so nothing is written twice."""
    per_worker = max(1, t.batch_size // world_size)
    accumulation = getattr(t, "grad_accumulation", 1) or 1
    return {
        "train_micro_batch_size_per_gpu": per_worker,
        "gradient_accumulation_steps": accumulation,
        "train_batch_size": per_worker * world_size * accumulation,
        "gradient_clipping": t.grad_clip or 0.0,
        "zero_optimization": {"stage": t.zero_stage},
        "bf16": {"enabled": t.precision == "bf16"},
        "fp16": {"enabled": t.precision == "fp16"},
        # the spec's torch optimizer, not one of DeepSpeed's own
        "zero_allow_untested_optimizer": True,
        "steps_per_print": 2**31 - 1,
        "wall_clock_breakdown": False,
    }


class DDPStrategy:
    """Plain torch: DDP when there is more than one worker, autocast, GradScaler for fp16."""

    name = "ddp"
    norm_after_step = False  # the norm is known before the step: a bad step can be skipped

    def __init__(self, model: nn.Module, optimizer, scheduler, t: TrainSpec):
        self.model = model  # on its device; DDP-wrapped when there is more than one worker
        self.optimizer, self.scheduler = optimizer, scheduler
        self.grad_clip = t.grad_clip
        self.accumulate = t.grad_accumulation
        # fp16: scale the loss so small gradients survive; the scale is checkpointed
        self.scaler = torch.amp.GradScaler("cuda") if t.precision == "fp16" else None
        self.handles_overflow = self.scaler is not None

    @property
    def module(self) -> nn.Module:
        return ckpt.unwrap(self.model)

    def micro_step(self, boundary: bool):
        """The context of one micro-batch's forward and backward: DDP skips its gradient
        all-reduce (``no_sync``) on every micro-step but a window's last."""
        return sync_context(self.model, boundary)

    def backward(self, loss: torch.Tensor, window: int = 1) -> None:
        """Add this micro-batch's share (``loss / window``) to the window's gradients."""
        loss = loss / window
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
        else:
            loss.backward()

    def finish_window(self) -> float | None:
        """At a window's boundary: unscale (fp16) and clip the summed gradients; returns
        the global gradient norm before clipping when clipping, else None."""
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        if self.grad_clip:
            return float(torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip))
        return None

    def grad_norm(self) -> float:
        """The global gradient norm after backward (without clipping)."""
        grads = [p.grad for p in self.model.parameters() if p.grad is not None]
        return float(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads]))) if grads else 0.0

    def step(self) -> None:
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)  # the next window starts from nothing
        if optim.steps_per_batch(self.scheduler):  # plateau steps once per epoch, in the loop
            self.scheduler.step()

    def skip(self) -> None:
        """Drop this step's gradients (a non-finite loss or exploding gradient)."""
        self.optimizer.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.update()

    def lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def sync_buffers(self) -> None:
        """Before evaluating: DDP already gives every rank rank 0's buffers (BatchNorm's
        running statistics) at each forward."""

    def save(self, directory: Path, rank: int, model_config: dict[str, Any], state: dict[str, Any]) -> bool:
        """Write a checkpoint; True when this rank wrote files Ray Train should upload."""
        if rank != 0:
            return False
        ckpt.save(
            directory,
            self.module,
            model_config,
            train_state=state,
            optimizer=self.optimizer,
            scheduler=self.scheduler,
            scaler=self.scaler,
        )
        return True

    def load(self, directory: Path) -> dict[str, Any]:
        return ckpt.load_train_state(directory, self.module, self.optimizer, self.scheduler, self.scaler)


class DeepSpeedStrategy:
    """DeepSpeed ZeRO over Ray Train's process group; every rank saves its own shard."""

    name = "deepspeed"
    norm_after_step = True  # DeepSpeed reduces and clips inside step(): stop, not skip

    def __init__(self, model: nn.Module, optimizer, scheduler, t: TrainSpec, world_size: int):
        import deepspeed
        import ray.train.torch

        deepspeed.init_distributed(dist_backend="nccl" if t.use_gpu else "gloo", auto_mpi_discovery=False)
        self.config = deepspeed_config(t, world_size)
        self.engine, self.optimizer, _, self.scheduler = deepspeed.initialize(
            model=model.to(ray.train.torch.get_device()),
            optimizer=optimizer,
            lr_scheduler=scheduler if optim.steps_per_batch(scheduler) else None,
            config=self.config,
            dist_init_required=False,
        )
        self.model = self.engine
        self.handles_overflow = t.precision == "fp16"  # DeepSpeed's own loss scaler
        self.accumulate = t.grad_accumulation  # the config's gradient_accumulation_steps

    @property
    def module(self) -> nn.Module:
        return self.engine.module

    def micro_step(self, boundary: bool):
        """Tell the engine whether this micro-batch ends a window, before its forward:
        ZeRO reduces (and the engine steps) on the boundary. Set explicitly every time, so
        an epoch's short last window ends at the epoch's end and the next epoch's windows
        start afresh, rather than following the engine's running micro-step count."""
        self.engine.set_gradient_accumulation_boundary(boundary)
        return nullcontext()

    def backward(self, loss: torch.Tensor, window: int = 1) -> None:
        # the engine would divide by gradient_accumulation_steps (k); divide by the
        # window's own size instead, so a short last window is a mean too
        self.engine.backward(loss / window, scale_wrt_gas=False)

    def finish_window(self) -> float | None:
        return None  # DeepSpeed clips inside step(); its norm is read by grad_norm()

    def grad_norm(self) -> float:
        norm = self.engine.get_global_grad_norm()
        return float(norm) if norm is not None else math.nan

    def step(self) -> None:
        # on the boundary: optimizer step, clipping, the LR schedule, gradients zeroed
        self.engine.step()

    def skip(self) -> None:
        # DeepSpeed reduces gradients inside backward; dropping them keeps ranks in step
        self.engine.zero_grad()

    def lr(self) -> float:
        return float(self.engine.get_lr()[0])

    def sync_buffers(self) -> None:
        """Before evaluating: every rank takes rank 0's buffers, as DDP does at each
        forward. Each rank's BatchNorm running statistics follow its own batches; the
        checkpoint holds rank 0's, so validation must score those, not a mix of ranks'
        (it did: ZeRO's val accuracy then differed from DDP's with the same weights)."""
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            for buffer in self.module.buffers():
                dist.broadcast(buffer.data, src=0)

    def _full_state_dict(self) -> dict[str, torch.Tensor]:
        import deepspeed

        # ZeRO-3 partitions parameters over ranks: gather them (a collective on all ranks)
        params = list(self.module.parameters())
        with deepspeed.zero.GatheredParameters(params, modifier_rank=None):
            return {k: v.detach().cpu().clone() for k, v in self.module.state_dict().items()}

    def save(self, directory: Path, rank: int, model_config: dict[str, Any], state: dict[str, Any]) -> bool:
        # collective: every rank writes its optimizer/parameter shard
        self.engine.save_checkpoint(str(directory / DEEPSPEED_DIR), tag=_TAG, client_state={"raydl": state})
        weights = self._full_state_dict()
        if rank == 0:  # the plain, Ray-free copy that evaluation and serving load
            ckpt.save_weights(directory, weights, model_config, train_state=state)
        return True

    def load(self, directory: Path) -> dict[str, Any]:
        # DeepSpeed unpickles its own shards (weights_only=False): the files rank 0 sealed
        # must at least be the ones it wrote
        artifacts.verify(directory)
        path, client = self.engine.load_checkpoint(
            str(directory / DEEPSPEED_DIR), tag=_TAG, load_lr_scheduler_states=True
        )
        if path is None:
            raise RaydlError(f"train: no DeepSpeed state in the checkpoint at {directory}")
        return {k: client["raydl"][k] for k in ("epoch", "best", "stale")}


@STRATEGIES.register("ddp")
def _ddp(model: nn.Module, optimizer, scheduler, t: TrainSpec, world_size: int, prepare=None) -> DDPStrategy:
    import ray.train.torch

    # to the worker's device; DDP when there is more than one worker (a one-worker search
    # trial passes its own `prepare`: to its device)
    return DDPStrategy((prepare or ray.train.torch.prepare_model)(model), optimizer, scheduler, t)


@STRATEGIES.register("deepspeed")
def _deepspeed(model: nn.Module, optimizer, scheduler, t: TrainSpec, world_size: int, prepare=None):
    return DeepSpeedStrategy(model, optimizer, scheduler, t, world_size)  # DeepSpeed places the model itself


def build_strategy(model: nn.Module, optimizer, scheduler, t: TrainSpec, world_size: int, prepare=None):
    """The strategy object the loop drives (see the module docstring)."""
    return STRATEGIES.get(t.strategy)(model, optimizer, scheduler, t, world_size, prepare)
