"""Table features fitted on the train split: robust scaling, one-hot and integer ids for
text columns, PCA — and nothing fitted on val/test rows."""

import numpy as np
import pandas as pd
import pytest

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
    assert pre.input_shape == [1 + 3] and pre.categories["color"] == ["blue", "green", "red"]
    batch = p.datasets["train"].take_batch(400)
    assert batch["x"].shape[1] == 4 and batch["ids"].shape[1] == 1
    assert batch["x"][:, 1:].sum(1).tolist() == [1.0] * len(batch["x"])  # one hot
    assert np.median(batch["x"][:, 0]) == pytest.approx(0, abs=0.05)  # robust: median 0
    train_cities = {pre.categories["city"][i - 1] for i in batch["ids"][:, 0]}
    assert train_cities == set(pre.categories["city"])  # categories come from train rows

    pca = prepared(pca=2).preprocessor
    assert pca.input_shape == [2] and np.asarray(pca.pca_components).shape == (2, 4)
