"""Hyperparameter search: the spec's ``tune:`` section → a Ray Tune ``Tuner``.

Each trial is the job's own training loop (:mod:`raydl.train.loop`). A multi-worker
trial (or DeepSpeed) is a TorchTrainer with ``train.workers`` Ray Train workers launched
from a small function trainable; ``TuneReportCallback`` passes every epoch's metrics (and
its checkpoint path) to Tune. A one-worker trial runs the loop in the Tune trial itself
(:class:`raydl.train.session.TrialSession`), reporting epochs and checkpoints to Tune,
with trial processes reused: a Ray Train run per trial cost 30-50 s of start-up against
about a second per epoch on digits. Either way schedulers such as ASHA stop poor trials
between epochs. The space's keys are dotted spec paths, set on each trial's
copy of the spec as ``raydl run`` overrides are.
"""

from __future__ import annotations

import json
import math
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray
from ray import tune
from ray.tune.integration.ray_train import CHECKPOINT_PATH_KEY, TuneReportCallback

from raydl.checks import metric_mode
from raydl.data.prepare import PreparedData
from raydl.errors import RaydlError, SpecError
from raydl.rundir import RunDir
from raydl.spec import JobSpec, TuneSpec, apply_overrides, validate_spec
from raydl.train.loop import train_loop_per_worker

# kind → (arguments, Tune sampler)
SPACES: dict[str, tuple[str, Callable[..., Any]]] = {
    "uniform": ("[low, high]", lambda a: tune.uniform(*a)),
    "loguniform": ("[low, high] with 0 < low", lambda a: tune.loguniform(*a)),
    "randint": ("[low, high) integers", lambda a: tune.randint(*a)),
    "choice": ("[value, ...]", lambda a: tune.choice(list(a))),
    "grid": ("[value, ...]", lambda a: tune.grid_search(list(a))),
}
TRIAL_CPU = 0.25  # the trial's own function (it only drives its TorchTrainer)
TRIALS_CSV, TRIALS_JSON, BEST_JSON = "trials.csv", "trials.json", "best.json"


def check_space(tune_spec: TuneSpec, raw_spec: dict[str, Any]) -> list[str]:
    """Problems of ``tune.space`` and ``tune.search``, one dotted line each."""
    problems = []
    for path, entry in tune_spec.space.items():
        where = f"tune.space.{path}"
        if path.split(".")[0] == "data" and path.split(".")[:2] != ["data", "augment"]:
            problems.append(
                f"{where}: the search prepares the data once for all its trials, so a data.* value "
                "cannot differ between trials (data.augment can: it runs in the training loop); "
                "run one job per data setting"
            )
            continue
        if len(entry) != 1:
            problems.append(f"{where}: give exactly one of {', '.join(SPACES)}, got {sorted(entry)}")
            continue
        ((kind, args),) = entry.items()
        if kind not in SPACES:
            problems.append(f"{where}: unknown space {kind!r}; known: {', '.join(SPACES)}")
            continue
        if not isinstance(args, list) or not args:
            problems.append(f"{where}.{kind}: expected {SPACES[kind][0]}, got {args!r}")
            continue
        if kind in ("uniform", "loguniform", "randint"):
            ok = len(args) == 2 and all(isinstance(a, int | float) for a in args) and args[0] < args[1]
            if not ok or (kind == "loguniform" and args[0] <= 0):
                problems.append(f"{where}.{kind}: expected {SPACES[kind][0]}, got {args!r}")
                continue
        if kind == "grid" and tune_spec.search not in ("grid", "random"):
            problems.append(
                f"{where}.grid: grid values need tune.search grid or random, not {tune_spec.search}"
            )
        if tune_spec.search == "grid" and kind not in ("grid", "choice"):
            problems.append(f"{where}.{kind}: tune.search grid takes only grid/choice values")
        # the trial's spec must be valid with a value from this range (ends of a range,
        # every value of a choice or grid: strings too)
        ends = [args[0], args[-1] - 1] if kind == "randint" else args
        for sample in ends:
            trial = json.loads(json.dumps({**raw_spec, "tune": None}))
            try:
                validate_spec(apply_overrides(trial, [f"{path}={json.dumps(sample)}"]))
            except SpecError as e:
                problems += [
                    f"{where}: a trial with {path}={sample!r} is not a valid spec: {p}" for p in e.lines()
                ]
                break
    if tune_spec.scheduler is not None and tune_spec.scheduler.type == "pbt":
        if not tune_spec.space:
            problems.append("tune.scheduler: pbt mutates tune.space, which is empty")
        if tune_spec.search in ("optuna", "hyperopt"):
            problems.append(
                f"tune.search: pbt samples and mutates the trials itself; use random or grid, "
                f"not {tune_spec.search}"
            )
        train = raw_spec.get("train") or {}
        if train.get("workers", 1) != 1 or train.get("strategy", "ddp") != "ddp":
            problems.append(
                "tune.scheduler: pbt needs one-worker trials (train.workers: 1, train.strategy: ddp): "
                "they hand their checkpoints to Tune, which PBT copies between trials"
            )
    if tune_spec.cv is not None:
        train = raw_spec.get("train") or {}
        if train.get("workers", 1) != 1 or train.get("strategy", "ddp") != "ddp":
            problems.append(
                "tune.cv: cross-validated trials run their folds in the trial's own process; "
                "they need train.workers: 1 and train.strategy: ddp"
            )
        if tune_spec.scheduler is not None and tune_spec.scheduler.type != "fifo":
            problems.append(
                f"tune.cv: a trial's score is known once all its folds have trained, so "
                f"{tune_spec.scheduler.type} has nothing to stop early; use scheduler fifo (or none)"
            )
    return problems


def search_metric(t: TuneSpec) -> str:
    """What picks the best trial: ``metric``, or its k-fold mean with ``tune.cv``."""
    return f"cv_{t.metric}" if t.cv else t.metric


def trial_spec(base: dict[str, Any], config: dict[str, Any]) -> JobSpec:
    """The spec of one trial: the base spec with each sampled dotted path set."""
    raw = json.loads(json.dumps(base))
    raw["tune"] = None
    raw = apply_overrides(raw, [f"{path}={json.dumps(value)}" for path, value in config.items()])
    return JobSpec.model_validate(raw)


def in_trial(spec: JobSpec) -> bool:
    """Whether a trial runs the training loop in its own Tune process (one DDP worker:
    nothing to distribute) rather than starting a Ray Train run of ``train.workers``."""
    return spec.train.workers == 1 and spec.train.strategy == "ddp"


def trial_resources(spec: JobSpec) -> dict[str, float]:
    """What one trial holds: its one worker's share, or its TorchTrainer's driver."""
    if in_trial(spec):
        return {"CPU": spec.train.cpus_per_worker, **({"GPU": 1} if spec.train.use_gpu else {})}
    return {"CPU": TRIAL_CPU}


def _trial(config: dict[str, Any], *, base: dict[str, Any], prepared: PreparedData, storage: str) -> None:
    """One trial: the job's training run with the sampled values."""
    from raydl.train.session import TrialSession
    from raydl.train.trainer import loop_config, torch_trainer

    spec = trial_spec(base, config)
    if in_trial(spec):
        datasets = {"train": prepared.datasets["train"], "val": prepared.datasets["val"]}
        cv = (base.get("tune") or {}).get("cv")
        t = base["tune"]
        extra = cross_validated(spec, prepared, cv, t["metric"], t["mode"]) if cv else {}
        session = TrialSession(datasets, spec.train.use_gpu, extra=extra)
        train_loop_per_worker(loop_config(spec, prepared), session)
        return
    name = f"train-{tune.get_context().get_trial_id()}"
    trainer = torch_trainer(spec, prepared, storage, name, callbacks=[TuneReportCallback()])
    trainer.fit()


def cross_validated(
    spec: JobSpec, prepared: PreparedData, k: int, metric: str, mode: str
) -> dict[str, float]:
    """k fold models of the trial's spec on the train split (stratified folds for
    classification, seeded), each scored by its best ``metric`` on its held-out fold:
    ``{cv_<metric>: mean, cv_<metric>_std: std, cv_folds: k}``."""
    import numpy as np
    from sklearn.model_selection import KFold, StratifiedKFold

    from raydl.data.sources import dataset_from_arrays
    from raydl.evaluate.crossval import _rows
    from raydl.train.session import CollectingSession
    from raydl.train.trainer import loop_config

    x, y = _rows(prepared.datasets["train"])
    if spec.data.task == "classification":
        folds = StratifiedKFold(k, shuffle=True, random_state=spec.seed).split(x, y)
    else:
        folds = KFold(k, shuffle=True, random_state=spec.seed).split(x)
    sign = 1 if mode == "max" else -1
    scores = []
    for train_idx, held_idx in folds:
        data = {
            "train": dataset_from_arrays({"x": x[train_idx], "y": y[train_idx]}),
            "val": dataset_from_arrays({"x": x[held_idx], "y": y[held_idx]}),
        }
        fold = PreparedData(data, prepared.preprocessor, {"split": {"rows": {"train": len(train_idx)}}})
        session = CollectingSession(data, spec.train.use_gpu)
        train_loop_per_worker(loop_config(spec, fold), session)
        values = [r[metric] for r in session.reports if metric in r]
        scores.append(max(values, key=lambda v: sign * v))
    return {f"cv_{metric}": float(np.mean(scores)), f"cv_{metric}_std": float(np.std(scores)), "cv_folds": k}


def _search_alg(t: TuneSpec, seed: int, max_concurrent: int):
    if t.search == "optuna":
        from ray.tune.search.optuna import OptunaSearch

        return OptunaSearch(seed=seed)  # TPE, Optuna's default sampler
    if t.search == "hyperopt":
        from ray.tune.search.hyperopt import HyperOptSearch

        return HyperOptSearch(random_state_seed=seed)
    from ray.tune.search import BasicVariantGenerator

    # Tune applies max_concurrent_trials to Searchers only: the variant generator (grid,
    # random) takes it itself, else every trial starts at once
    return BasicVariantGenerator(random_state=seed, max_concurrent=max_concurrent)


def _scheduler(t: TuneSpec, max_epochs: int):
    s = t.scheduler
    if s is None or s.type == "fifo":
        return None
    if s.type == "asha":
        return tune.schedulers.ASHAScheduler(
            time_attr="training_iteration",
            max_t=max_epochs,
            grace_period=s.grace_period,
            reduction_factor=s.reduction_factor,
        )
    if s.type == "hyperband":
        return tune.schedulers.HyperBandScheduler(
            time_attr="training_iteration", max_t=max_epochs, reduction_factor=s.reduction_factor
        )
    if s.type == "pbt":
        # the exploited trial restarts from the better trial's checkpoint with the
        # explored values (raydl.train.session.TrialSession applies them on restore)
        return tune.schedulers.PopulationBasedTraining(
            time_attr="training_iteration",
            perturbation_interval=s.perturbation_interval,
            hyperparam_mutations=param_space(t),
            # every trial pauses at each perturbation point until all got there: a trial
            # of short epochs cannot finish before its exploit takes effect
            synch=True,
        )
    if s.type == "median":
        return tune.schedulers.MedianStoppingRule(time_attr="training_iteration", grace_period=s.grace_period)
    raise RaydlError(f"tune.scheduler.type: {s.type} is not implemented in this version of raydl")


def param_space(t: TuneSpec) -> dict[str, Any]:
    space = {}
    for path, entry in t.space.items():
        ((kind, args),) = entry.items()
        if t.search == "grid" and kind == "choice":
            kind = "grid"
        space[path] = SPACES[kind][1](args)
    return space


def concurrent_trials(spec: JobSpec) -> int:
    """``tune.max_concurrent_trials``, else as many trials as the cluster's CPUs hold
    with one CPU left for Ray Data and the driver."""
    if spec.tune and spec.tune.max_concurrent_trials:
        return spec.tune.max_concurrent_trials
    cpus = ray.cluster_resources().get("CPU", 1)
    per_trial = trial_resources(spec)["CPU"]
    if not in_trial(spec):
        per_trial += spec.train.workers * spec.train.cpus_per_worker
    return max(1, int((cpus - 1) // per_trial))


def _trainable(spec: JobSpec, prepared: PreparedData, run: RunDir):
    return tune.with_resources(
        tune.with_parameters(
            _trial,
            base=spec.model_dump(mode="json"),
            prepared=prepared,
            storage=str(run.ray_storage / "trials"),
        ),
        trial_resources(spec),
    )


def build_tuner(spec: JobSpec, prepared: PreparedData, run: RunDir) -> tune.Tuner:
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
            callbacks=[EpochLog(str(run.path / "tune")), *_callbacks(spec, run)],
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


@dataclass
class SearchResult:
    best_config: dict[str, Any]
    best_metrics: dict[str, Any]
    best_checkpoint: Path
    best_spec: JobSpec
    trials: list[dict[str, Any]]
    best_epochs: list[dict[str, Any]]  # the best trial's per-epoch metrics


def run_search(spec: JobSpec, prepared: PreparedData, run: RunDir, resume: bool = False) -> SearchResult:
    """Run (or resume) the search; write ``tune/`` and return the best trial."""
    t = spec.tune
    assert t is not None
    tune_dir = run.ray_storage / "tune"
    if resume and tune.Tuner.can_restore(str(tune_dir)):
        tuner = tune.Tuner.restore(str(tune_dir), _trainable(spec, prepared, run), resume_errored=True)
    else:
        tuner = build_tuner(spec, prepared, run)
    grid = tuner.fit()
    if _interrupted(t, run):
        # Tune catches Ctrl-C, saves the experiment and returns as if done: a stopped
        # search must not go on to evaluation as if it had finished
        raise KeyboardInterrupt(f"search stopped; continue it with: raydl tune --resume {run.path}")
    return write_results(spec, grid, run)


def _interrupted(t: TuneSpec, run: RunDir) -> bool:
    """Whether the search stopped before every trial ended. Tune catches Ctrl-C, stops
    its trials and returns as if done, marking them terminated in memory, and the state
    it saved may be seconds old: only trials that ended through Tune's own stop (done,
    stopped by the scheduler, or failed) are in :class:`EpochLog`'s list."""
    grids = math.prod(len(v["grid"]) for v in t.space.values() if "grid" in v)
    expected = grids * (1 if t.search == "grid" else t.num_samples)
    path = run.path / "tune" / ENDED_LOG
    ended = set(path.read_text().split()) if path.is_file() else set()
    return len(ended) < expected


EPOCH_LOG = "epochs.jsonl"
ENDED_LOG = "ended.txt"


class EpochLog(tune.Callback):
    """Every result every trial reports, appended on the driver to ``tune/epochs.jsonl``
    as it arrives; :func:`write_results` builds the trials table from it. The ids of the
    trials that ended (completed, stopped by the scheduler, failed) go to ``tune/ended.txt``.

    Tune's own per-trial ``result.json`` loses rows whenever a trial is paused and
    restored (its JSON logger copies the file back from storage, which is synced only
    every few seconds), and synchronous PBT pauses every trial at every perturbation."""

    def __init__(self, folder: str) -> None:
        self.folder = Path(folder)

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        with open(self.folder / EPOCH_LOG, "a") as f:
            f.write(json.dumps({"trial_id": trial.trial_id, **result}, default=str) + "\n")

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        with open(self.folder / ENDED_LOG, "a") as f:
            f.write(trial.trial_id + "\n")

    on_trial_error = on_trial_complete


def _epoch_frames(run: RunDir) -> dict[str, Any]:
    """The trials' results from :class:`EpochLog`, one frame per trial id, flattened
    like Tune's ``metrics_dataframe`` (``config/<key>``)."""
    import pandas as pd

    path = run.path / "tune" / EPOCH_LOG
    if not path.is_file():
        return {}
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    frame = pd.json_normalize(rows, sep="/", max_level=1)
    return {tid: df.reset_index(drop=True) for tid, df in frame.groupby("trial_id", sort=False)}


def write_results(spec: JobSpec, grid, run: RunDir) -> SearchResult:
    """The trials table (CSV + JSON), the best config and its checkpoint under ``tune/``."""
    t = spec.tune
    assert t is not None
    out = run.path / "tune"
    out.mkdir(exist_ok=True)
    sign = 1 if t.mode == "max" else -1
    metric = search_metric(t)
    frames = _epoch_frames(run)
    rows = []
    for result in grid:
        trial_id = _trial_id(result)
        df = frames.get(trial_id or "", result.metrics_dataframe)
        epochs = 0 if df is None or df.empty else int(df.get("epoch", df["training_iteration"]).max())
        values = [] if df is None or metric not in df else [v for v in df[metric] if v == v]
        best = (max if sign > 0 else min)(values) if values else None
        spread = df[f"{metric}_std"].iloc[-1] if t.cv and values and df is not None else None
        own_stop = bool(df is not None and "stopped_early" in df and df["stopped_early"].any())
        if result.error is not None:
            status = "error"
        elif epochs < spec.train.epochs and not own_stop:
            status = "stopped by scheduler"
        elif own_stop:
            status = "early stopping"
        else:
            status = "completed"
        config = _trial_config(result, df)
        rows.append(
            {
                "trial": trial_id,
                "trial_path": result.path,
                "status": status,
                "epochs": epochs,
                metric: best,
                f"last_{metric}": values[-1] if values else None,
                # tune.cv: the spread of the trial's fold scores
                **({f"{metric}_std": spread} if spread is not None else {}),
                **{f"config/{k}": v for k, v in config.items()},
                # PBT: how often the trial took another's checkpoint and new values
                "exploited": _exploits(run, trial_id),
                "_df": df,
                "_result": result,
            }
        )
    done = [r for r in rows if r[metric] is not None]
    if not done:
        raise RaydlError("tune: no trial reported " + metric)
    best_row = max(done, key=lambda r: sign * r[metric])
    best_spec = trial_spec(
        spec.model_dump(mode="json"),
        {k.removeprefix("config/"): v for k, v in best_row.items() if k.startswith("config/")},
    )
    best_df = best_row.pop("_df")
    checkpoint = _trial_checkpoint(best_row.pop("_result"), best_df, best_spec)
    keep = [c for c in best_df.columns if c == "epoch" or c == "lr" or c.startswith(("train_", "val_"))]
    best_epochs = [{k: v for k, v in r.items() if v == v} for r in best_df[keep].to_dict("records")]
    for r in rows:
        r.pop("_df", None)
        r.pop("_result", None)
    rows.sort(key=lambda r: (r[metric] is None, -sign * (r[metric] or 0)))

    import pandas as pd

    pd.DataFrame(rows).to_csv(out / TRIALS_CSV, index=False)
    (out / TRIALS_JSON).write_text(json.dumps(rows, indent=2, default=str) + "\n")
    target = out / "best_checkpoint"
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(checkpoint, target)
    best_config = {k.removeprefix("config/"): v for k, v in best_row.items() if k.startswith("config/")}
    best = {
        "config": best_config,
        "trial": best_row["trial"],
        metric: best_row[metric],
        "epochs": best_row["epochs"],
        "checkpoint": str(target),
        "trials": len(rows),
    }
    (out / BEST_JSON).write_text(json.dumps(best, indent=2, default=str) + "\n")
    return SearchResult(best_config, best, target, best_spec, rows, best_epochs)


def _trial_id(result) -> str | None:
    """The trial's id, from its directory name. Not ``result.metrics``: a PBT exploit
    decided at a trial's last epoch hands the trial the other trial's last result."""
    trial_id = (result.metrics or {}).get("trial_id")
    m = re.match(r"_?\w*?_([0-9a-f]+_\d{5})_", Path(result.path).name) if result.path else None
    return m.group(1) if m else trial_id


def _trial_config(result, df) -> dict[str, Any]:
    """The config the trial's last epoch trained with. Not ``result.config``: a PBT
    exploit decided at a trial's last epoch hands it new values it never trains with."""
    if df is None or df.empty:
        return dict(result.config or {})
    last = df.iloc[-1]
    config = {k.removeprefix("config/"): last[k] for k in df.columns if k.startswith("config/")}
    return {k: v.item() if hasattr(v, "item") else v for k, v in config.items()} or dict(result.config or {})


def _exploits(run: RunDir, trial_id: str | None) -> int:
    """Times PBT replaced this trial's state and values (one line each in its policy log)."""
    policy = run.ray_storage / "tune" / f"pbt_policy_{trial_id}.txt"
    return len(policy.read_text().splitlines()) if trial_id and policy.is_file() else 0


def _trial_checkpoint(result, df, spec: JobSpec) -> Path:
    """The trial's best checkpoint: Tune's own (a one-worker trial reports to Tune), or
    the one its Ray Train run kept."""
    metric = spec.train.checkpoint.metric
    sign = 1 if metric_mode(metric, spec.train.checkpoint.mode) == "max" else -1
    kept = [(c, m) for c, m in result.best_checkpoints or [] if not math.isnan(m.get(metric, math.nan))]
    if kept:
        return Path(max(kept, key=lambda cm: sign * cm[1][metric])[0].path)
    return _best_checkpoint(df, spec)


def _best_checkpoint(df, spec: JobSpec) -> Path:
    """The trial's checkpoint best by ``train.checkpoint.metric`` that Ray Train kept."""
    metric = spec.train.checkpoint.metric
    sign = 1 if metric_mode(metric, spec.train.checkpoint.mode) == "max" else -1
    rows = [r for _, r in df.iterrows() if isinstance(r.get(CHECKPOINT_PATH_KEY), str)]
    rows = [r for r in rows if Path(r[CHECKPOINT_PATH_KEY]).is_dir() and not math.isnan(r[metric])]
    if not rows:
        raise RaydlError("tune: the best trial kept no checkpoint")
    return Path(max(rows, key=lambda r: sign * r[metric])[CHECKPOINT_PATH_KEY])
