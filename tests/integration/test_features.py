"""Table features fitted on the train split: robust scaling, one-hot and integer ids for
text columns, PCA — and nothing fitted on val/test rows."""

import numpy as np
import pandas as pd
import pytest

import raydl
from raydl.data.prepare import prepare_data
from raydl.spec import validate_spec

pytestmark = pytest.mark.integration


def test_robust_onehot_ids_and_pca_are_fitted_on_train(ray_cluster, tmp_path):
    rng = np.random.default_rng(0)
    n = 300
    frame = pd.DataFrame(
        {
            "a": rng.normal(50, 10, size=n),
            "color": rng.choice(["red", "green", "blue"], size=n),
            "city": [f"c{i}" for i in rng.integers(0, 30, size=n)],
            "label": rng.integers(0, 2, size=n),
        }
    )
    path = tmp_path / "t.csv"
    frame.to_csv(path, index=False)

    def prepared(**features):
        spec = validate_spec(
            {
                "name": "f",
                "data": {
                    "source": {"type": "csv", "path": str(path)},
                    "label": "label",
                    "features": {"numeric": "robust", "categorical": "onehot", "max_onehot": 5} | features,
                },
                "model": {"arch": "mlp"},
            }
        )
        return prepare_data(spec)

    p = prepared()
    pre = p.preprocessor
    assert pre.onehot == ["color"] and pre.id_columns == ["city"]
    # a, color one-hot, then city as an integer id for the model's embedding
    assert pre.input_shape == [1 + 3 + 1] and pre.categories["color"] == ["blue", "green", "red"]
    assert pre.data_info == {"id_cardinalities": [len(pre.categories["city"]) + 1]}
    batch = p.datasets["train"].take_batch(400)
    assert set(batch) == {"x", "y"} and batch["x"].shape[1] == 5
    assert batch["x"][:, 1:4].sum(1).tolist() == [1.0] * len(batch["x"])  # one hot
    assert np.median(batch["x"][:, 0]) == pytest.approx(0, abs=0.05)  # robust: median 0
    train_cities = {pre.categories["city"][int(i) - 1] for i in batch["x"][:, 4]}
    assert train_cities == set(pre.categories["city"])  # categories come from train rows

    pca = prepared(pca=2).preprocessor  # PCA projects the encoded features, not the ids
    assert pca.input_shape == [2 + 1] and np.asarray(pca.pca_components).shape == (2, 4)


def test_a_high_cardinality_column_is_learnt_through_its_embedding(ray_cluster, tmp_path):
    """The label depends only on the city (40 values, above max_onehot), so the model
    can only beat chance through the ids' embedding; SMOTE keeps the ids whole."""
    rng = np.random.default_rng(1)
    n = 1200
    city = rng.integers(0, 40, size=n)
    frame = pd.DataFrame(
        {
            "noise": rng.normal(size=n),
            "city": [f"c{i}" for i in city],
            "label": np.where(city % 4 == 0, 1, 0),  # 1:3 imbalance
        }
    )
    path = tmp_path / "cities.csv"
    frame.to_csv(path, index=False)
    spec = validate_spec(
        {
            "name": "cities",
            "seed": 0,
            "data": {
                "source": {"type": "csv", "path": str(path)},
                "label": "label",
                "features": {"categorical": "onehot", "max_onehot": 8},
                "balance": "smote",
            },
            "model": {"arch": "mlp", "params": {"hidden": [32]}},
            "train": {"workers": 1, "epochs": 8, "batch_size": 64, "optimizer": {"lr": 0.01}},
        }
    )
    p = prepare_data(spec)
    x = np.concatenate([b["x"] for b in p.datasets["train"].iter_batches(batch_format="numpy")])
    assert p.report["class_counts"]["after"]["0"] == p.report["class_counts"]["after"]["1"]
    ids = x[:, -1]
    assert np.array_equal(ids, ids.round()) and set(ids.astype(int)) <= set(range(1, 41))

    result = raydl.run(spec, runs_root=tmp_path / "runs")
    assert result.metrics["accuracy"] >= 0.95, result.metrics
