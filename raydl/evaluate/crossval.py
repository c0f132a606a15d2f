"""Cross-validation: k-fold (stratified for classification) or leave-one-out over the
rows that are not test, each fold the job's own training run, the folds run in parallel
as Ray Tune trials; mean ± std per metric and one row per fold in ``cv/``.

Folds: with ``data.split: {method: kfold, k}`` they are the split's own content-hash
folds (:mod:`raydl.data.split`), preprocessing refitted per fold. Otherwise
``evaluate.cross_validation`` folds the raw train+val rows on the driver (the rows in
content-hash order; :mod:`raydl.evaluate.folds`, seeded by the spec, the k-fold that
``tune.cv`` uses too, or scikit-learn's ``LeaveOneOut``) and refits the preprocessing on
each fold's train rows, so no fold's held-out rows are in a statistic it trains with;
leave-one-out reuses the train split's (one row moves no statistic far, and refitting
per row costs a pass per row). It is meant for data small enough to train k times.
Folds are scored through the Predictor's forward pass and post-processing, as the test
split is.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from ray import tune
from ray.tune.integration.ray_train import TuneReportCallback
from sklearn.model_selection import LeaveOneOut

from raydl.data.prepare import PreparedData
from raydl.errors import DataError, RaydlError
from raydl.evaluate.folds import Folds, gather_rows, kfold_indices
from raydl.evaluate.metrics import compute_test_metrics
from raydl.predict import Predictor
from raydl.rundir import RunDir
from raydl.spec import JobSpec
from raydl.train.checkpoint import load_model_dir
from raydl.train.trials import concurrent_trials, in_trial, trial_checkpoint, trial_resources

LOO_MAX_ROWS = 200  # leave-one-out trains once per row
_rows = gather_rows  # its name before raydl.evaluate.folds


def fold_indices(spec: JobSpec, y: np.ndarray) -> Folds:
    """``(train_idx, held_out_idx)`` per fold of ``evaluate.cross_validation``.

    Raises:
        DataError: leave-one-out on too many rows, or a class with fewer rows than folds.
    """
    cv = spec.evaluate.cross_validation
    assert cv is not None
    if cv.method == "loo":
        if len(y) > LOO_MAX_ROWS:
            raise DataError(
                f"evaluate.cross_validation.method: leave-one-out trains once per row; {len(y)} rows "
                f"is more than {LOO_MAX_ROWS}, use kfold"
            )
        return list(LeaveOneOut().split(y))
    return kfold_indices(
        y,
        cv.k,
        spec.seed,
        stratified=spec.data.task == "classification",
        where="evaluate.cross_validation.k",
        rows="non-test rows",
    )


def _split_folds(spec: JobSpec, prepared: PreparedData):
    """The folds of a ``data.split: {method: kfold}`` spec (raydl.data.split's content-hash
    folds), each preprocessed by a preprocessor refitted on its own train rows."""
    from raydl.data.prepare import fold_datasets

    folds, held = [], []
    for f in range(spec.data.split.k or 0):
        train, val, pre = fold_datasets(prepared, f)
        folds.append((train, val, pre))
        held.append(gather_rows(val))
    return folds, held


def _fold_trial(config: dict[str, Any], *, spec: JobSpec, folds: list, storage: str, prepared: PreparedData):
    """One fold: the job's training run on the fold's rows, validated on its held-out rows.
    One DDP worker runs the loop in this Tune trial, as a one-worker search trial does
    (:func:`raydl.train.trials.in_trial`); more workers are a Ray Train run."""
    from raydl.train.loop import train_loop_per_worker
    from raydl.train.session import TrialSession
    from raydl.train.trainer import loop_config, torch_trainer

    train, held_out, pre = folds[config["fold"]]
    data = PreparedData(
        {"train": train, "val": held_out},
        pre,
        {"split": {"rows": {"train": train.count()}}},
    )
    if in_trial(spec):
        train_loop_per_worker(loop_config(spec, data), TrialSession(data.datasets, spec.train.use_gpu))
        return
    trainer = torch_trainer(spec, data, storage, f"fold-{config['fold']}", callbacks=[TuneReportCallback()])
    trainer.fit()


def cross_validate(spec: JobSpec, prepared: PreparedData, run: RunDir) -> dict[str, Any]:
    """Run every fold; write ``cv/folds.csv`` and ``cv/summary.json``; return the summary."""
    cv = spec.evaluate.cross_validation
    assert cv is not None
    if spec.data.split.method == "kfold":
        folds, held = _split_folds(spec, prepared)
        n_rows = sum(len(hy) for _, hy in held)
    else:
        from raydl.data.columns import dataset_from_arrays
        from raydl.data.prepare import frame_fold, raw_rows

        raw = raw_rows(prepared)
        labels = raw[spec.data.label].to_numpy()
        y = prepared.preprocessor.encode_target(labels) if spec.data.task == "classification" else labels
        refit = spec.evaluate.cross_validation is not None and spec.evaluate.cross_validation.method != "loo"
        folds, held = [], []
        for tr, te in fold_indices(spec, y):
            train, held_out, pre = frame_fold(prepared, raw.iloc[tr], raw.iloc[te], refit)
            folds.append((train, dataset_from_arrays({"x": held_out[0], "y": held_out[1]}), pre))
            held.append(held_out)
        n_rows = len(raw)
    concurrent = concurrent_trials(spec)
    tuner = tune.Tuner(
        tune.with_resources(
            tune.with_parameters(
                _fold_trial, spec=spec, folds=folds, storage=str(run.ray_storage / "cv"), prepared=prepared
            ),
            trial_resources(spec),
        ),
        param_space={"fold": tune.grid_search(list(range(len(folds))))},
        tune_config=tune.TuneConfig(max_concurrent_trials=concurrent, reuse_actors=in_trial(spec)),
        run_config=tune.RunConfig(name="cv", storage_path=str(run.ray_storage)),
    )
    grid = tuner.fit()

    pre = prepared.preprocessor
    rows = []
    for result in (grid[i] for i in range(len(grid))):  # ResultGrid: indexable, typed without __iter__
        if result.config is None or result.metrics_dataframe is None:
            raise RaydlError("evaluate.cross_validation: a fold did not run (the search was stopped)")
        if result.error is not None:
            raise RaydlError(
                f"evaluate.cross_validation: fold {result.config['fold']} failed: {result.error}"
            )
        fold = result.config["fold"]
        hx, hy = held[fold]
        pre = folds[fold][2]
        model = load_model_dir(trial_checkpoint(result, result.metrics_dataframe, spec))
        predictor = Predictor.from_model(pre, model)
        post = predictor.postprocess(predictor.forward(hx))
        if spec.data.task == "classification":
            scores = post["probabilities"]
            m = compute_test_metrics(
                "classification", hy, post["label_id"], scores, spec.evaluate.metrics, pre.num_outputs
            )
        else:
            m = compute_test_metrics(
                "regression", pre.decode_target(hy), post["value"], None, spec.evaluate.metrics
            )
        rows.append(
            {
                "fold": fold,
                "train_rows": n_rows - len(hy),
                **{k: v for k, v in m.items() if isinstance(v, int | float) or v is None},
            }
        )
    rows.sort(key=lambda r: r["fold"])
    table = pd.DataFrame(rows)
    names = [c for c in table.columns if c not in ("fold", "train_rows", "n")]
    summary = {
        "method": cv.method,
        "folds": len(rows),
        "rows": n_rows,
        "metrics": {
            n: {"mean": float(table[n].mean()), "std": float(table[n].std(ddof=1)) if len(rows) > 1 else 0.0}
            for n in names
            if table[n].notna().any()
        },
        "per_fold": rows,
    }
    out_dir = run.path / "cv"
    out_dir.mkdir(exist_ok=True)
    table.to_csv(out_dir / "folds.csv", index=False)
    run.write_json(out_dir / "summary.json", summary)
    return summary


def format_summary(summary: dict[str, Any]) -> list[str]:
    """``name: mean ± std`` lines."""
    return [f"{n}: {v['mean']:.4f} ± {v['std']:.4f}" for n, v in summary["metrics"].items()]
