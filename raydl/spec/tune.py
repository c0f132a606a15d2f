"""``tune:``: a hyperparameter search over the training run (Ray Tune)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from raydl.spec.base import Section


class TuneSchedulerSpec(Section):
    type: Literal["asha", "hyperband", "median", "pbt", "fifo"] = Field(
        "asha",
        description="asha / hyperband / median stop poor trials between epochs; pbt exploits the "
        "best trials' checkpoints and explores their values; fifo runs every trial to its end.",
    )
    grace_period: int = Field(
        1, ge=1, description="Epochs a trial runs before it may be stopped (asha, median)."
    )
    reduction_factor: float = Field(
        3.0, gt=1, description="Share of trials kept at each rung is 1/reduction_factor (asha, hyperband)."
    )
    perturbation_interval: int = Field(
        1, ge=1, description="pbt: epochs between perturbations (exploit the top trials, explore)."
    )


class TuneSpec(Section):
    num_samples: int = Field(8, ge=1, description="Trials (per grid point with grid values).")
    search: Literal["grid", "random", "optuna", "hyperopt"] = Field(
        "random",
        description="How trials' values are drawn: grid (every combination), random, optuna (TPE), hyperopt.",
    )
    scheduler: TuneSchedulerSpec | None = Field(
        None, description="A trial scheduler (stops or exploits trials between epochs); none: fifo."
    )
    metric: str = Field("val_loss", description="The reported metric that picks the best trial.")
    mode: Literal["min", "max"] = Field("min", description="Whether a lower or a higher metric is better.")
    max_concurrent_trials: int | None = Field(
        None, ge=1, description="Trials running at once; default: as many as the cluster's CPUs hold."
    )
    max_failures: int = Field(
        0,
        ge=0,
        le=10,
        description="Retries of a crashed trial (an error raised in it, its process killed, its "
        "node lost), each from the trial's last checkpoint, before it is marked failed. A "
        "failed trial never stops the search: the best of the others is chosen, and the "
        "run's metrics, report and output say which trials failed and why.",
    )
    space: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="Dotted spec path → {uniform|loguniform|choice|…: args}."
    )
    cv: int | None = Field(
        None,
        ge=2,
        description="Score each trial by k-fold cross-validation on the train split (stratified "
        "for classification; each fold's preprocessing refitted on its own train rows): the "
        "mean over its k fold models of each one's best `metric`, "
        "reported as cv_<metric> (with cv_<metric>_std), picks the best trial; the trial then "
        "trains on the whole train split, validated on val, for the checkpoint that flows on. "
        "Needs one-worker trials and no early-stopping scheduler.",
    )
