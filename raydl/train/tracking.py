"""Experiment tracking for a single run: Weights & Biases and TensorBoard, both optional
(``tracking:`` in the spec), both given the resolved spec as config. ``metrics.jsonl``
is written always, by the trainer.

Why on the driver and not on rank 0: the driver already receives every epoch's metrics
(the trainer's follower thread), so the files land in the run directory on the machine
that owns it — TensorBoard and W&B offline directories need no shared filesystem between
Ray nodes — and Ray Train workers need neither wandb nor tensorboard installed. The W&B
run id is the run directory's name, so ``raydl run --resume`` continues the same W&B run.

Run directory layout:
  tensorboard/   event files (``tensorboard --logdir RUN/tensorboard``)
  wandb/         the W&B run (offline: ``wandb sync RUN/wandb/wandb/offline-run-*``)
"""

from __future__ import annotations

import math
from typing import Any

from raydl.rundir import RunDir
from raydl.spec import JobSpec


def _scalars(row: dict[str, Any]) -> dict[str, float]:
    return {
        k: float(v)
        for k, v in row.items()
        if isinstance(v, int | float) and not isinstance(v, bool) and k != "epoch" and math.isfinite(v)
    }


class Tracker:
    """Receives each epoch's metrics row on the driver and writes it to W&B/TensorBoard."""

    def __init__(self, spec: JobSpec, run: RunDir):
        self._wandb: Any = None
        self._tb: Any = None
        tracking = spec.tracking
        if tracking is None:
            return
        config = spec.model_dump(mode="json")
        if tracking.wandb is not None and tracking.wandb.mode != "disabled":
            import wandb

            (run.path / "wandb").mkdir(exist_ok=True)
            self._wandb = wandb.init(
                project=tracking.wandb.project,
                mode=tracking.wandb.mode,
                dir=str(run.path / "wandb"),
                name=spec.name,
                id=run.path.name.replace(".", "-"),
                resume="allow",
                config=config,
                reinit="create_new",
            )
        if tracking.tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(log_dir=str(run.path / "tensorboard"))
            self._tb.add_text("spec", "```yaml\n" + spec.to_yaml() + "```", global_step=0)

    def log(self, row: dict[str, Any]) -> None:
        epoch = int(row.get("epoch", 0))
        values = _scalars(row)
        if self._wandb is not None:
            self._wandb.log({**values, "epoch": epoch}, step=epoch)
        if self._tb is not None:
            for key, value in values.items():
                self._tb.add_scalar(key, value, global_step=epoch)
            self._tb.flush()

    def close(self) -> None:
        if self._wandb is not None:
            self._wandb.finish()
        if self._tb is not None:
            self._tb.close()
