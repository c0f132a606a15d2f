"""Search: Optuna TPE + ASHA over lr, dropout and width on digits, 16 trials on the
session's Ray (2 cores); poor trials stop early, the best beats the spec's defaults.
The 16 trials are one-worker trials run in their Tune processes (reused between trials);
the sweep W&B test runs two-worker trials, each a TorchTrainer."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import raydl
from raydl.spec import load_spec, validate_spec
from tests.wandb_records import wandb_config


@pytest.fixture(scope="module")
def search_run(ray_cluster, tmp_path_factory, repo_root):
    spec = load_spec(f"{repo_root}/jobs/digits_tune.yaml")
    return spec, raydl.run(spec, runs_root=tmp_path_factory.mktemp("tune"))


@pytest.mark.timeout(1200)
def test_sixteen_trials_with_early_stops_in_the_trials_table(search_run):
    spec, result = search_run
    table = pd.read_csv(result.run_dir / "tune" / "trials.csv")
    assert len(table) == 16
    assert set(table["status"]) <= {"completed", "stopped by scheduler"}
    stopped = table[table["status"] == "stopped by scheduler"]
    assert len(stopped) >= 4 and (stopped["epochs"] < spec.train.epochs).all()
    assert (table[table["status"] == "completed"]["epochs"] == spec.train.epochs).all()
    assert {"config/train.optimizer.lr", "config/model.params.dropout", "config/model.params.hidden"} <= set(
        table.columns
    )
    assert table["config/train.optimizer.lr"].nunique() == 16  # TPE samples, not one point
    rows = json.loads((result.run_dir / "tune" / "trials.json").read_text())
    assert [r["trial"] for r in rows] == list(table["trial"])


@pytest.mark.timeout(1200)
def test_best_trial_flows_to_evaluation_and_beats_the_default(search_run, tmp_path):
    spec, result = search_run
    best = json.loads((result.run_dir / "tune" / "best.json").read_text())
    table = pd.read_csv(result.run_dir / "tune" / "trials.csv")
    assert best["val_accuracy"] == table["val_accuracy"].max()
    assert (result.run_dir / "tune" / "best_checkpoint" / "model.json").is_file()
    cfg = json.loads((result.run_dir / "checkpoints" / "best" / "model.json").read_text())
    assert cfg["params"]["hidden"] == best["config"]["model.params.hidden"]  # evaluated = best trial's model
    assert 1 <= result.metrics["best_epoch"] <= spec.train.epochs  # the best checkpoint's epoch, not None
    # the spec's own configuration, trained by the same loop for the same epochs on the
    # same split (a plain run), evaluated on the same test rows
    default = raydl.run(spec.model_copy(update={"tune": None}), runs_root=tmp_path)
    assert result.metrics["accuracy"] > default.metrics["accuracy"] + 0.02, (
        result.metrics["accuracy"],
        default.metrics["accuracy"],
    )


@pytest.mark.timeout(1200)
def test_report_opens_in_chromium_with_every_section(search_run, tmp_path, chromium_dom, images):
    _, result = search_run
    page = (result.run_dir / "report.html").read_text()
    dom = chromium_dom(result.run_dir / "report.html", tmp_path)
    for section in ("test-metrics", "data", "confusion-matrix", "roc", "per-class", "errors", "search"):
        assert f'<section id="{section}">' in dom, section
    # class counts, confusion matrix, ROC curves, search scatter; every one decodes
    assert len(images(page)) >= 4
    errors = json.loads((result.run_dir / "errors.json").read_text())
    assert errors["worst"] and "confused_pairs" in errors


def test_sweep_tracking_one_offline_wandb_run_per_trial(ray_cluster, tmp_path, repo_root):
    from raydl.data.prepare import prepare_data
    from raydl.rundir import RunDir
    from raydl.spec import TrackingSpec, WandbSpec
    from raydl.tune.search import run_search

    spec = load_spec(
        f"{repo_root}/jobs/digits_tune.yaml",
        # two-worker trials: each is a TorchTrainer (the DDP trial path)
        [
            "train.epochs=1",
            "train.workers=2",
            "tune.num_samples=2",
            "tune.search=random",
            "tune.scheduler=null",
        ],
    )
    # tracking: is refused by the spec checks until the tracking issue lands; the sweep's
    # own W&B runs only need its wandb section
    spec = spec.model_copy(
        update={"tracking": TrackingSpec(wandb=WandbSpec(project="sweep-test", mode="offline"))}
    )
    run = RunDir.create(tmp_path, spec.name)
    result = run_search(spec, prepare_data(spec), run)
    runs = sorted((run.path / "wandb" / "wandb").glob("offline-run-*"))
    assert len(runs) == 2 == len(result.trials)
    group = f"{spec.name}-sweep-{run.path.name}"
    for r in runs:
        # the run's records (protobuf) name its group; its config is the trial's sample
        assert group.encode() in next(r.glob("*.wandb")).read_bytes()
        config = wandb_config(next(r.glob("*.wandb")))  # offline runs write no config.yaml
        assert "train.optimizer.lr" in config and "model.params.hidden" in config, config


@pytest.mark.timeout(600)
def test_pbt_exploits_a_better_trials_checkpoint_with_new_values(ray_cluster, tmp_path, repo_root):
    from raydl.data.prepare import prepare_data
    from raydl.rundir import RunDir
    from raydl.tune.search import run_search

    space = {
        "train.optimizer.lr": {"loguniform": [1.0e-4, 3.0e-2]},
        "model.params.dropout": {"uniform": [0, 0.5]},
    }
    spec = load_spec(
        f"{repo_root}/jobs/digits_tune.yaml",
        [
            "train.epochs=3",  # perturbations after epochs 1 and 2
            "tune.search=random",
            "tune.num_samples=4",
            "tune.max_concurrent_trials=4",
            'tune.scheduler={"type": "pbt", "perturbation_interval": 1}',
            f"tune.space={json.dumps(space)}",
        ],
    )
    run = RunDir.create(tmp_path, spec.name)
    result = run_search(spec, prepare_data(spec), run)
    table = pd.read_csv(run.path / "tune" / "trials.csv")
    assert len(table) == 4 and (table["epochs"] == 3).all()
    assert (table["exploited"] > 0).any(), table
    # every epoch of every trial, as raydl's driver logged it (Tune's own result.json of
    # a trial loses rows when PBT pauses and restores it)
    log = [json.loads(line) for line in (run.path / "tune" / "epochs.jsonl").read_text().splitlines()]
    assert sorted(r["epoch"] for r in log) == [1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3]
    took_effect = 0
    for trial, path in zip(table["trial"], table["trial_path"]):
        start = json.loads((Path(path) / "params.json").read_text())["train.optimizer.lr"]
        rows = [r for r in log if r["trial_id"] == trial]
        # an exploited trial continued from the other trial's checkpoint (its epoch) with
        # the explored learning rate, which its optimizer reports
        moved = [r for r in rows if r.get("resumed_from_epoch", 0) >= 1 and r["lr"] != pytest.approx(start)]
        for r in moved:
            assert r["lr"] == pytest.approx(r["config"]["train.optimizer.lr"])
        took_effect += bool(moved)
    assert took_effect >= 1
    # the table's config is what each trial's last epoch trained with
    for _, row in table.iterrows():
        last = [r for r in log if r["trial_id"] == row["trial"]][-1]
        assert last["epoch"] == 3 and row["config/train.optimizer.lr"] == pytest.approx(last["lr"])
    assert (result.best_checkpoint / "model.json").is_file()


def test_cv_folds_refit_preprocessing_on_their_own_train_rows(ray_cluster):
    """tune.cv folds the train split's raw rows: each fold's scaler is fitted on its own
    train rows only (its held-out rows are in no statistic its model trains with), and
    the folds together hold every train row once as held-out."""
    from raydl.data.prepare import prepare_data, raw_rows
    from raydl.evaluate.folds import kfold_indices
    from raydl.tune.tuner import cv_folds

    spec = validate_spec(
        {
            "name": "iris-cv-folds",
            "seed": 0,
            "data": {"source": {"type": "builtin", "name": "iris"}, "label": "target"},
            "model": {"arch": "mlp", "params": {"hidden": [8]}},
            "train": {"workers": 1, "epochs": 1, "batch_size": 16},
            "tune": {"metric": "val_accuracy", "mode": "max", "cv": 2, "space": {}},
        }
    )
    prepared = prepare_data(spec)
    train = raw_rows(prepared, ("train",))
    features = prepared.preprocessor.numeric_columns
    x = train[features].to_numpy(float)
    y = prepared.preprocessor.encode_target(train["target"].to_numpy())
    expected = kfold_indices(y, 2, spec.seed, stratified=True, where="tune.cv")
    folds = cv_folds(spec, prepared, 2)
    assert len(folds) == 2
    assert sum(len(held) for _, held in expected) == len(train) == prepared.datasets["train"].count()
    for fold, (train_idx, held_idx) in zip(folds, expected, strict=True):
        assert fold.datasets["train"].count() == len(train_idx)
        assert fold.datasets["val"].count() == len(held_idx)
        centre = np.asarray(fold.preprocessor.center)
        assert np.allclose(centre, x[train_idx].mean(0), atol=1e-9)  # its own train rows
        assert not np.allclose(centre, x.mean(0), atol=1e-6)  # not the whole train split's


def test_cv_in_search_scores_each_trial_by_its_fold_mean(ray_cluster, tmp_path):
    """tune.cv: 3 fold models per trial on the train split; the trial with the best fold
    mean wins, and its model (trained on the whole train split) is evaluated on test."""
    space = {"train.optimizer.lr": {"grid": [1.0e-4, 3.0e-2]}}
    spec = validate_spec(
        {
            "name": "iris-cv-search",
            "seed": 0,
            "data": {"source": {"type": "builtin", "name": "iris"}, "label": "target"},
            "model": {"arch": "mlp", "params": {"hidden": [16]}},
            "train": {"workers": 1, "epochs": 6, "batch_size": 16, "checkpoint": {"metric": "val_accuracy"}},
            "tune": {"search": "grid", "metric": "val_accuracy", "mode": "max", "cv": 3, "space": space},
        }
    )
    result = raydl.run(spec, runs_root=tmp_path)
    table = pd.read_csv(result.run_dir / "tune" / "trials.csv")
    assert len(table) == 2 and {"cv_val_accuracy", "cv_val_accuracy_std"} <= set(table.columns)
    assert table["cv_val_accuracy"].between(0, 1).all() and (table["cv_val_accuracy_std"] >= 0).all()
    for path in table["trial_path"]:
        rows = [json.loads(line) for line in (Path(path) / "result.json").read_text().splitlines()]
        assert {r["cv_folds"] for r in rows} == {3} and len({r["cv_val_accuracy"] for r in rows}) == 1
    best = json.loads((result.run_dir / "tune" / "best.json").read_text())
    assert best["cv_val_accuracy"] == table["cv_val_accuracy"].max()
    # lr 3e-2 learns iris in 6 epochs, 1e-4 barely moves: the fold means tell them apart
    assert best["config"]["train.optimizer.lr"] == 3.0e-2
    assert result.metrics["accuracy"] > 0.8


@pytest.mark.timeout(600)
@pytest.mark.parametrize(
    "search, scheduler",
    [
        ("hyperopt", {"type": "hyperband", "reduction_factor": 2}),
        ("random", {"type": "median", "grace_period": 1}),
    ],
)
def test_hyperopt_hyperband_and_median_stopping_search(ray_cluster, tmp_path, repo_root, search, scheduler):
    """The other search algorithm and schedulers the spec offers run the same trials:
    every trial trains, reports each epoch to raydl's log, and the best one wins the table.
    HyperBand pauses trials between its rungs, as synchronous PBT does."""
    from raydl.data.prepare import prepare_data
    from raydl.rundir import RunDir
    from raydl.tune.search import run_search

    spec = load_spec(
        f"{repo_root}/jobs/digits_tune.yaml",
        [
            "train.epochs=4",
            f"tune.search={search}",
            "tune.num_samples=4",
            f"tune.scheduler={json.dumps(scheduler)}",
        ],
    )
    run = RunDir.create(tmp_path, spec.name)
    result = run_search(spec, prepare_data(spec), run)
    table = pd.read_csv(run.path / "tune" / "trials.csv")
    assert len(table) == 4 and (table["epochs"] >= 1).all()
    assert set(table["status"]) <= {"completed", "stopped by scheduler"}
    assert table["config/train.optimizer.lr"].nunique() == 4
    log = [json.loads(line) for line in (run.path / "tune" / "epochs.jsonl").read_text().splitlines()]
    for _, row in table.iterrows():  # the table's epochs are the epochs each trial logged
        logged = sorted(r["epoch"] for r in log if r["trial_id"] == row["trial"])
        assert logged == list(range(1, row["epochs"] + 1))
    assert result.best_metrics["val_accuracy"] == table["val_accuracy"].max()
    assert (result.best_checkpoint / "model.json").is_file()
