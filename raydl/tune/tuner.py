"""The tuner: the spec's ``tune:`` section → a Ray Tune ``Tuner`` over the job's own
training loop (:mod:`raydl.train.loop`).

A multi-worker trial (or DeepSpeed) is a TorchTrainer with ``train.workers`` Ray Train
workers launched from a small function trainable; ``TuneReportCallback`` passes every
epoch's metrics (and its checkpoint path) to Tune. A one-worker trial runs the loop in
the Tune trial itself (:class:`raydl.train.session.TrialSession`), reporting epochs and
checkpoints to Tune, with trial processes reused: a Ray Train run per trial cost 30-50 s
of start-up against about a second per epoch on digits. Either way schedulers such as
ASHA stop poor trials between epochs. Search algorithms and trial schedulers are the
families :data:`raydl.catalog.SEARCHERS` and :data:`raydl.catalog.TRIAL_SCHEDULERS`,
registered here.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from ray import tune
from ray.tune.integration.ray_train import TuneReportCallback

from raydl.catalog import SEARCHERS, TRIAL_SCHEDULERS, metric_mode
from raydl.data.columns import dataset_from_arrays
from raydl.data.prepare import PreparedData
from raydl.evaluate.folds import kfold_indices
from raydl.rundir import RunDir
from raydl.spec import JobSpec, TuneSchedulerSpec, TuneSpec
from raydl.train.loop import train_loop_per_worker
from raydl.train.trials import concurrent_trials, in_trial, trial_resources
from raydl.tune.results import EpochLog
from raydl.tune.space import param_space, search_metric, trial_spec


# ---------------------------------------------------------------------- trials
def _trial(
    config: dict[str, Any],
    *,
    base: dict[str, Any],
    prepared: PreparedData,
    storage: str,
    folds: list[PreparedData] | None = None,
) -> None:
    """One trial: the job's training run with the sampled values (and, with ``tune.cv``,
    first its fold models, scored on their held-out folds)."""
    from raydl.train.session import TrialSession
    from raydl.train.trainer import loop_config, torch_trainer

    spec = trial_spec(base, config)
    if in_trial(spec):
        datasets = {"train": prepared.datasets["train"], "val": prepared.datasets["val"]}
        t = base["tune"]
        extra = cross_validated(spec, folds, t["metric"], t["mode"]) if folds else {}
        session = TrialSession(datasets, spec.train.use_gpu, extra=extra)
        train_loop_per_worker(loop_config(spec, prepared), session)
        return
    name = f"train-{tune.get_context().get_trial_id()}"
    trainer = torch_trainer(spec, prepared, storage, name, callbacks=[TuneReportCallback()])
    trainer.fit()


def cv_folds(spec: JobSpec, prepared: PreparedData, k: int) -> list[PreparedData]:
    """The ``k`` folds of ``tune.cv``, each its train rows preprocessed and its held-out
    rows as ``val``: the folds over the train split's raw rows (stratified for
    classification, seeded: :mod:`raydl.evaluate.folds`), made once on the driver for
    every trial. Each fold's preprocessing (fills, clip bounds, scaling, categories,
    tokenizer …) is refitted on the fold's train rows, so no held-out row is in a
    statistic its fold model trains with, as in ``evaluate.cross_validation``.

    Raises:
        DataError: a class has fewer train rows than folds.
    """
    from raydl.data.prepare import frame_fold, raw_rows

    raw = raw_rows(prepared, ("train",))
    labels = raw[spec.data.label].to_numpy()
    classification = spec.data.task == "classification"
    y = prepared.preprocessor.encode_target(labels) if classification else labels
    folds = []
    for train_idx, held_idx in kfold_indices(
        y, k, spec.seed, stratified=classification, where="tune.cv", rows="train rows"
    ):
        train, (hx, hy), pre = frame_fold(prepared, raw.iloc[train_idx], raw.iloc[held_idx], refit=True)
        data = {"train": train, "val": dataset_from_arrays({"x": hx, "y": hy})}
        folds.append(PreparedData(data, pre, {"split": {"rows": {"train": len(train_idx)}}}))
    return folds


def cross_validated(spec: JobSpec, folds: list[PreparedData], metric: str, mode: str) -> dict[str, float]:
    """The trial's spec trained on each fold (:func:`cv_folds`), each scored by its best
    ``metric`` on its held-out fold: ``{cv_<metric>: mean, cv_<metric>_std: std, cv_folds: k}``."""
    from raydl.train.session import CollectingSession
    from raydl.train.trainer import loop_config

    sign = 1 if mode == "max" else -1
    scores = []
    for fold in folds:
        session = CollectingSession(fold.datasets, spec.train.use_gpu)
        train_loop_per_worker(loop_config(spec, fold), session)
        values = [r[metric] for r in session.reports if metric in r]
        scores.append(max(values, key=lambda v: sign * v))
    return {
        f"cv_{metric}": float(np.mean(scores)),
        f"cv_{metric}_std": float(np.std(scores)),
        "cv_folds": len(folds),
    }


# ------------------------------------------------- search algorithms, schedulers
@SEARCHERS.register("optuna")
def _optuna(t: TuneSpec, seed: int, max_concurrent: int) -> Any:
    from ray.tune.search.optuna import OptunaSearch

    return OptunaSearch(seed=seed)  # TPE, Optuna's default sampler


@SEARCHERS.register("hyperopt")
def _hyperopt(t: TuneSpec, seed: int, max_concurrent: int) -> Any:
    from ray.tune.search.hyperopt import HyperOptSearch

    return HyperOptSearch(random_state_seed=seed)


def _variants(t: TuneSpec, seed: int, max_concurrent: int) -> Any:
    from ray.tune.search import BasicVariantGenerator

    # Tune applies max_concurrent_trials to Searchers only: the variant generator (grid,
    # random) takes it itself, else every trial starts at once
    return BasicVariantGenerator(random_state=seed, max_concurrent=max_concurrent)


SEARCHERS.register("grid")(_variants)
SEARCHERS.register("random")(_variants)


def _search_alg(t: TuneSpec, seed: int, max_concurrent: int) -> Any:
    """The search algorithm ``tune.search`` names."""
    return SEARCHERS.get(t.search)(t, seed, max_concurrent)


@TRIAL_SCHEDULERS.register("fifo")
def _fifo(s: TuneSchedulerSpec, t: TuneSpec, max_epochs: int) -> None:
    return None  # Tune's default: every trial runs to its end


@TRIAL_SCHEDULERS.register("asha")
def _asha(s: TuneSchedulerSpec, t: TuneSpec, max_epochs: int) -> Any:
    return tune.schedulers.ASHAScheduler(
        time_attr="training_iteration",
        max_t=max_epochs,
        grace_period=s.grace_period,
        reduction_factor=s.reduction_factor,
    )


@TRIAL_SCHEDULERS.register("hyperband")
def _hyperband(s: TuneSchedulerSpec, t: TuneSpec, max_epochs: int) -> Any:
    return tune.schedulers.HyperBandScheduler(
        time_attr="training_iteration", max_t=max_epochs, reduction_factor=s.reduction_factor
    )


@TRIAL_SCHEDULERS.register("pbt")
def _pbt(s: TuneSchedulerSpec, t: TuneSpec, max_epochs: int) -> Any:
    # the exploited trial restarts from the better trial's checkpoint with the explored
    # values (raydl.train.session.TrialSession applies them on restore)
    return tune.schedulers.PopulationBasedTraining(
        time_attr="training_iteration",
        perturbation_interval=s.perturbation_interval,
        hyperparam_mutations=param_space(t),
        # every trial pauses at each perturbation point until all got there: a trial of
        # short epochs cannot finish before its exploit takes effect
        synch=True,
    )


@TRIAL_SCHEDULERS.register("median")
def _median(s: TuneSchedulerSpec, t: TuneSpec, max_epochs: int) -> Any:
    return tune.schedulers.MedianStoppingRule(time_attr="training_iteration", grace_period=s.grace_period)


def _scheduler(t: TuneSpec, max_epochs: int) -> Any:
    """The trial scheduler ``tune.scheduler`` names; None (FIFO) without one."""
    if t.scheduler is None:
        return None
    return TRIAL_SCHEDULERS.get(t.scheduler.type)(t.scheduler, t, max_epochs)


# ----------------------------------------------------------------------- tuner
def _trainable(spec: JobSpec, prepared: PreparedData, run: RunDir) -> Any:
    t = spec.tune
    return tune.with_resources(
        tune.with_parameters(
            _trial,
            base=spec.model_dump(mode="json"),
            prepared=prepared,
            storage=str(run.ray_storage / "trials"),
            folds=cv_folds(spec, prepared, t.cv) if t is not None and t.cv else None,
        ),
        trial_resources(spec),
    )


def build_tuner(spec: JobSpec, prepared: PreparedData, run: RunDir) -> tune.Tuner:
    """A Tuner over the job's training run, as ``tune:`` says; it writes under ``run``."""
    t = spec.tune
    assert t is not None
    space = param_space(t)
    c = spec.train.checkpoint
    (run.path / "tune").mkdir(exist_ok=True)
    return tune.Tuner(
        _trainable(spec, prepared, run),
        param_space=space,
        tune_config=tune.TuneConfig(
            metric=search_metric(t),
            mode=t.mode,
            search_alg=_search_alg(t, spec.seed, concurrent_trials(spec)),
            scheduler=_scheduler(t, spec.train.epochs),
            num_samples=1 if t.search == "grid" else t.num_samples,
            max_concurrent_trials=concurrent_trials(spec),
            # one-worker trials: the next trial reuses a finished trial's process (its
            # torch/Ray imports and fetched datasets), the bulk of a short trial's time
            reuse_actors=in_trial(spec),
        ),
        run_config=tune.RunConfig(
            name="tune",
            storage_path=str(run.ray_storage),
            verbose=0,  # Tune's trial tables: the run's terminal shows raydl's stages; trials go to tune/
            callbacks=[EpochLog(str(run.path / "tune")), *_callbacks(spec, run)],
            # a crashed trial is retried from its last checkpoint (tune.max_failures), then
            # marked failed; Tune goes on with the other trials either way
            failure_config=tune.FailureConfig(max_failures=t.max_failures),
            # one-worker trials report their checkpoints to Tune: keep the best and the latest
            checkpoint_config=tune.CheckpointConfig(
                # PBT restores trials from each other's checkpoints: keep them all (with a
                # limit, a trial deletes the checkpoint another trial now uses)
                num_to_keep=None if t.scheduler and t.scheduler.type == "pbt" else c.keep + 1,
                checkpoint_score_attribute=c.metric,
                checkpoint_score_order=metric_mode(c.metric, c.mode),
            ),
        ),
    )


def _callbacks(spec: JobSpec, run: RunDir) -> list:
    """One W&B run per trial, grouped under the sweep (offline unless the spec says)."""
    wandb = spec.tracking.wandb if spec.tracking else None
    if wandb is None or wandb.mode == "disabled":
        return []
    from ray.air.integrations.wandb import WandbLoggerCallback

    return [
        WandbLoggerCallback(
            project=wandb.project,
            group=f"{spec.name}-sweep-{run.path.name}",
            mode=wandb.mode,
            dir=str(run.path / "wandb"),
            log_config=True,
        )
    ]
