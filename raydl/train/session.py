"""Where the training loop runs: what it asks of its surroundings, in one place.

The loop (:mod:`raydl.train.loop`) needs its rank and world size, a device, its data,
a checkpoint to resume from, a way to report an epoch, and a way to wrap its model.

- :class:`TrainSession`: a Ray Train worker (``ray.train.*``); every ``raydl run`` and
  every multi-worker search trial.
- :class:`DriverSession`: a one-worker ``raydl run`` on one node runs the loop in the
  driver's own process, its checkpoints kept as Ray Train keeps them (the best by metric
  plus the latest, in the run's ``ray/train/``): a worker group would start a controller,
  a worker process and dataset coordinators (about 20 s on 2 cores) to run the one
  process the driver already is.
- :class:`TrialSession`: a one-worker search trial runs the loop inside its Ray Tune
  trial (``ray.tune.*``). A Ray Train run there would add a controller, a worker group
  and a dataset coordinator per trial (measured: 30–50 s per trial on 2 loaded cores,
  against ~1 s per epoch of training) to run one process that does no collective work.
  Tune then also holds the trial's checkpoints, which PBT exploits.
"""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from raydl import artifacts


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

    def restored(self, strategy, t) -> None:
        """A restart resumes its own run: the checkpoint's optimizer state stands."""

    def prepare_model(self, model: torch.nn.Module) -> torch.nn.Module:
        import ray.train.torch

        return ray.train.torch.prepare_model(model)  # to device; DDP when world > 1


class TrialSession:
    """A one-worker search trial: the loop runs in the Tune trial's own process on the
    prepared (materialized) train/val datasets, and reports to Tune."""

    rank, world = 0, 1

    def __init__(
        self, datasets: dict[str, Any], use_gpu: bool = False, extra: dict[str, Any] | None = None
    ) -> None:
        self.datasets = datasets
        self.device = torch.device("cuda" if use_gpu and torch.cuda.is_available() else "cpu")
        self.extra = extra or {}  # added to every report (tune.cv: the trial's fold scores)

    def checkpoint(self):
        from ray import tune

        return tune.get_checkpoint()

    def dataset(self, name: str):
        return self.datasets[name].iterator()

    def report(self, metrics: dict[str, Any], checkpoint_dir: Path | None = None) -> None:
        from ray import tune

        checkpoint = tune.Checkpoint.from_directory(checkpoint_dir) if checkpoint_dir else None
        tune.report({**metrics, **self.extra}, checkpoint=checkpoint)

    def prepare_model(self, model: torch.nn.Module) -> torch.nn.Module:
        return model.to(self.device)

    def restored(self, strategy, t) -> None:
        """PBT hands an exploited trial the better trial's checkpoint, optimizer state
        included, and this trial's explored values: the optimizer takes them (learning
        rate rescaled through the schedule, weight decay). Dropout is read from the spec
        when the model is built; a value that changes parameter shapes cannot be loaded."""
        apply_optimizer_values(strategy.optimizer, strategy.scheduler, t.optimizer)


class CollectingSession(TrialSession):
    """A fold model of a cross-validated trial (``tune.cv``): the loop runs in the trial's
    process from scratch; its epochs are kept here, not reported to Tune, nor saved."""

    def __init__(self, datasets: dict[str, Any], use_gpu: bool = False) -> None:
        super().__init__(datasets, use_gpu)
        self.reports: list[dict[str, Any]] = []

    def checkpoint(self):
        return None

    def report(self, metrics: dict[str, Any], checkpoint_dir: Path | None = None) -> None:
        self.reports.append(dict(metrics))


def apply_optimizer_values(optimizer, scheduler, spec) -> None:
    """Set ``spec.lr`` and ``spec.weight_decay`` on a restored optimizer; a schedule keeps
    its position (the current lr is scaled by new/old base lr)."""
    base = list(getattr(scheduler, "base_lrs", [])) or [
        g.get("initial_lr", g["lr"]) for g in optimizer.param_groups
    ]
    for i, group in enumerate(optimizer.param_groups):
        old = base[min(i, len(base) - 1)]
        group["lr"] = group["lr"] * spec.lr / old if old else spec.lr
        if "initial_lr" in group:
            group["initial_lr"] = spec.lr
        if "weight_decay" in group and hasattr(spec, "weight_decay"):
            group["weight_decay"] = spec.weight_decay
    if scheduler is not None and hasattr(scheduler, "base_lrs"):
        scheduler.base_lrs = [spec.lr for _ in scheduler.base_lrs]


class DriverSession(TrialSession):
    """A one-worker run in the driver's process: the loop reads the prepared datasets,
    and each report goes to ``on_report`` (the driver's metrics log and display); a
    checkpoint is copied to ``folder/checkpoint_<epoch>``, with ``checkpoints.json``
    naming what is kept: the ``keep`` best by ``metric`` (``mode``) and the latest, which
    a resumed run continues from."""

    INDEX = "checkpoints.json"

    def __init__(
        self,
        datasets: dict[str, Any],
        folder: Path,
        *,
        keep: int,
        metric: str,
        mode: str,
        on_report: Callable[[dict[str, Any]], None],
    ) -> None:
        super().__init__(datasets)
        self.folder, self.keep, self.metric = Path(folder), keep, metric
        self.sign = 1 if mode == "max" else -1
        self.on_report = on_report
        index = self.folder / self.INDEX
        self.kept: list[dict[str, Any]] = json.loads(index.read_text()) if index.is_file() else []

    def checkpoint(self):
        latest = self.latest()
        if latest is None:
            return None
        from ray.train import Checkpoint

        return Checkpoint.from_directory(str(latest))

    def restored(self, strategy, t) -> None:
        """A resumed run continues its own checkpoint: its optimizer state stands."""

    def report(self, metrics: dict[str, Any], checkpoint_dir: Path | None = None) -> None:
        if checkpoint_dir is not None:
            name = f"checkpoint_{int(metrics['epoch']):06d}"
            artifacts.replace_dir(checkpoint_dir, self.folder / name)
            others = [k for k in self.kept if k["name"] != name]
            self.kept = [*others, {"name": name, "metrics": dict(metrics)}]
            self._prune()
        self.on_report(dict(metrics))

    def _score(self, entry: dict[str, Any]) -> float | None:
        value = entry["metrics"].get(self.metric)
        return None if value is None or not math.isfinite(value) else self.sign * float(value)

    def _prune(self) -> None:
        scored = [k for k in self.kept if self._score(k) is not None]
        best = sorted(scored, key=lambda k: -self._score(k))[: self.keep]  # type: ignore[operator]
        keep = {k["name"] for k in best} | {self.kept[-1]["name"]}
        for k in self.kept:
            if k["name"] not in keep:
                shutil.rmtree(self.folder / k["name"], ignore_errors=True)
        self.kept = [k for k in self.kept if k["name"] in keep]
        tmp = self.folder / (self.INDEX + ".tmp")
        tmp.write_text(json.dumps(self.kept))
        tmp.replace(self.folder / self.INDEX)  # a Ctrl-C mid-write leaves the old index

    def latest(self) -> Path | None:
        return self.folder / self.kept[-1]["name"] if self.kept else None

    def best(self) -> tuple[Path, dict[str, Any]] | None:
        """The kept checkpoint best by the metric (the latest when none reports it)."""
        if not self.kept:
            return None
        scored = [k for k in self.kept if self._score(k) is not None]
        entry = max(scored, key=self._score) if scored else self.kept[-1]  # type: ignore[arg-type]
        return self.folder / entry["name"], entry["metrics"]
