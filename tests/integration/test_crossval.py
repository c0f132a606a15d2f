"""5-fold cross-validation on wine: parallel fold trials, mean ± std, 5 fold rows."""

import json

import numpy as np
import pandas as pd

from raydl.data.prepare import prepare_data
from raydl.evaluate.crossval import cross_validate, fold_indices, format_summary
from raydl.rundir import RunDir
from raydl.spec import validate_spec

SPEC = {
    "name": "wine-cv",
    "seed": 5,
    "data": {
        "source": {"type": "builtin", "name": "wine"},
        "task": "classification",
        "label": "target",
        "features": {"numeric": "standard"},
        "split": {"method": "stratified", "val": 0.15, "test": 0.15},
    },
    "model": {"arch": "mlp", "params": {"hidden": [32]}},
    "train": {
        "workers": 1,
        "cpus_per_worker": 0.5,
        "epochs": 6,
        "batch_size": 16,
        "optimizer": {"type": "adamw", "lr": 0.01},
        "checkpoint": {"metric": "val_accuracy", "mode": "max", "keep": 1},
    },
    "evaluate": {"cross_validation": {"k": 5}, "metrics": ["accuracy", "f1_macro"]},
}


def test_folds_are_stratified_and_partition_the_rows():
    spec = validate_spec(json.loads(json.dumps(SPEC)))
    y = np.repeat([0, 1, 2], [50, 30, 20])
    folds = fold_indices(spec, y)
    assert len(folds) == 5
    held = np.concatenate([te for _, te in folds])
    assert sorted(held) == list(range(100))  # every row held out exactly once
    for tr, te in folds:
        assert set(tr).isdisjoint(te)
        assert np.bincount(y[te]).tolist() == [10, 6, 4]  # class shares kept per fold


def test_five_fold_cv_on_wine(ray_cluster, tmp_path):
    spec = validate_spec(json.loads(json.dumps(SPEC)))
    run = RunDir.create(tmp_path, spec.name)
    summary = cross_validate(spec, prepare_data(spec), run)
    table = pd.read_csv(run.path / "cv" / "folds.csv")
    assert list(table["fold"]) == [0, 1, 2, 3, 4]
    assert table["n"].sum() == summary["rows"]  # the folds cover every non-test row
    acc = summary["metrics"]["accuracy"]
    assert acc["mean"] == np.mean(table["accuracy"]) and acc["std"] == np.std(table["accuracy"], ddof=1)
    assert acc["mean"] > 0.85 and acc["std"] > 0
    assert set(summary["metrics"]) == {"accuracy", "f1_macro"}
    assert format_summary(summary)[0].startswith("accuracy: 0.")
