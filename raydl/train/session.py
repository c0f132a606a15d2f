"""Where the training loop runs: what it asks of its surroundings, in one place.

The loop (:mod:`raydl.train.loop`) needs its rank and world size, a device, its data,
a checkpoint to resume from, a way to report an epoch, and a way to wrap its model.

- :class:`TrainSession`: a Ray Train worker (``ray.train.*``); every ``raydl run`` and
  every multi-worker search trial.
- :class:`TrialSession`: a one-worker search trial runs the loop inside its Ray Tune
  trial (``ray.tune.*``). A Ray Train run there would add a controller, a worker group
  and a dataset coordinator per trial (measured: 30–50 s per trial on 2 loaded cores,
  against ~1 s per epoch of training) to run one process that does no collective work.
  Tune then also holds the trial's checkpoints, which PBT exploits.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch


class TrainSession:
    """Inside a Ray Train worker."""

    def __init__(self) -> None:
        import ray.train
        import ray.train.torch

        ctx = ray.train.get_context()
        self.rank, self.world = ctx.get_world_rank(), ctx.get_world_size()
        self.device = ray.train.torch.get_device()

    def checkpoint(self):
        import ray.train

        return ray.train.get_checkpoint()

    def dataset(self, name: str):
        import ray.train

        return ray.train.get_dataset_shard(name)

    def report(self, metrics: dict[str, Any], checkpoint_dir: Path | None = None) -> None:
        import ray.train

        checkpoint = ray.train.Checkpoint.from_directory(checkpoint_dir) if checkpoint_dir else None
        ray.train.report(metrics, checkpoint=checkpoint)

    def prepare_model(self, model: torch.nn.Module) -> torch.nn.Module:
        import ray.train.torch

        return ray.train.torch.prepare_model(model)  # to device; DDP when world > 1


class TrialSession:
    """A one-worker search trial: the loop runs in the Tune trial's own process on the
    prepared (materialized) train/val datasets, and reports to Tune."""

    rank, world = 0, 1

    def __init__(self, datasets: dict[str, Any], use_gpu: bool = False) -> None:
        self.datasets = datasets
        self.device = torch.device("cuda" if use_gpu and torch.cuda.is_available() else "cpu")

    def checkpoint(self):
        from ray import tune

        return tune.get_checkpoint()

    def dataset(self, name: str):
        return self.datasets[name].iterator()

    def report(self, metrics: dict[str, Any], checkpoint_dir: Path | None = None) -> None:
        from ray import tune

        checkpoint = tune.Checkpoint.from_directory(checkpoint_dir) if checkpoint_dir else None
        tune.report(metrics, checkpoint=checkpoint)

    def prepare_model(self, model: torch.nn.Module) -> torch.nn.Module:
        return model.to(self.device)
