"""The training run as a Ray Tune trial, as search trials and cross-validation folds both
run it: in the trial's own process (one DDP worker: nothing to distribute) or as a
TorchTrainer of ``train.workers``; what one trial holds, how many fit at once, and which
checkpoint a finished trial hands on."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from raydl.catalog import metric_mode
from raydl.errors import RaydlError
from raydl.spec import JobSpec

TRIAL_CPU = 0.25  # the trial's own function when it only drives its TorchTrainer


def in_trial(spec: JobSpec) -> bool:
    """Whether a trial runs the training loop in its own Tune process (one DDP worker:
    nothing to distribute) rather than starting a Ray Train run of ``train.workers``."""
    return spec.train.workers == 1 and spec.train.strategy == "ddp"


def trial_resources(spec: JobSpec) -> dict[str, float]:
    """What one trial holds: its one worker's share, or its TorchTrainer's driver."""
    if in_trial(spec):
        return {"CPU": spec.train.cpus_per_worker, **({"GPU": 1} if spec.train.use_gpu else {})}
    return {"CPU": TRIAL_CPU}


def concurrent_trials(spec: JobSpec) -> int:
    """``tune.max_concurrent_trials``, else as many trials as the cluster's CPUs hold
    with one CPU left for Ray Data and the driver."""
    import ray

    if spec.tune and spec.tune.max_concurrent_trials:
        return spec.tune.max_concurrent_trials
    cpus = ray.cluster_resources().get("CPU", 1)
    per_trial = trial_resources(spec)["CPU"]
    if not in_trial(spec):
        per_trial += spec.train.workers * spec.train.cpus_per_worker
    return max(1, int((cpus - 1) // per_trial))


def trial_checkpoint(result: Any, df: Any, spec: JobSpec) -> Path:
    """A finished trial's best checkpoint (by ``train.checkpoint.metric``): Tune's own (a
    one-worker trial reports to Tune), or the one its Ray Train run kept."""
    metric = spec.train.checkpoint.metric
    sign = 1 if metric_mode(metric, spec.train.checkpoint.mode) == "max" else -1
    kept = [(c, m) for c, m in result.best_checkpoints or [] if not math.isnan(m.get(metric, math.nan))]
    if kept:
        return Path(max(kept, key=lambda cm: sign * cm[1][metric])[0].path)
    return best_checkpoint(df, spec)


def best_checkpoint(df: Any, spec: JobSpec) -> Path:
    """The checkpoint best by ``train.checkpoint.metric`` that a trial's Ray Train run
    kept, from the trial's reported rows (``df``, a DataFrame).

    Raises:
        RaydlError: no row names a checkpoint that still exists.
    """
    from ray.tune.integration.ray_train import CHECKPOINT_PATH_KEY

    metric = spec.train.checkpoint.metric
    sign = 1 if metric_mode(metric, spec.train.checkpoint.mode) == "max" else -1
    rows = [r for _, r in df.iterrows() if isinstance(r.get(CHECKPOINT_PATH_KEY), str)]
    rows = [r for r in rows if Path(r[CHECKPOINT_PATH_KEY]).is_dir() and not math.isnan(r[metric])]
    if not rows:
        raise RaydlError("tune: the best trial kept no checkpoint")
    return Path(max(rows, key=lambda r: sign * r[metric])[CHECKPOINT_PATH_KEY])
