"""The data stage on a real local Ray: sources, splits, preprocessing fitted on train."""

import numpy as np
import pandas as pd
import pytest
import sklearn.datasets

from raydl.data.prepare import prepare_data
from raydl.errors import DataError
from raydl.spec import validate_spec

pytestmark = pytest.mark.integration


def spec_for(source: dict, **data) -> object:
    data.setdefault("label", "target")
    return validate_spec(
        {
            "name": "t",
            "seed": data.pop("seed", 0),
            "data": {"source": source, **data},
            "model": {"arch": "mlp"},
        }
    )


def rows(ds, column="x") -> np.ndarray:
    return np.concatenate(
        [b[column].reshape(len(b[column]), -1) for b in ds.iter_batches(batch_format="numpy")]
    )


def row_set(ds) -> set[bytes]:
    x, y = rows(ds), rows(ds, "y")
    return {xi.tobytes() + yi.tobytes() for xi, yi in zip(x, y)}


def test_digits_splits_are_disjoint_stratified_and_seeded(ray_cluster):
    spec = spec_for({"type": "builtin", "name": "digits"}, seed=3)
    first = prepare_data(spec)
    sets = {name: row_set(ds) for name, ds in first.datasets.items()}
    assert not sets["train"] & sets["test"]
    assert not sets["train"] & sets["val"]
    assert not sets["val"] & sets["test"]
    counts = first.report["split"]["rows"]
    assert sum(counts.values()) == 1797 and counts["test"] == first.datasets["test"].count()
    # stratified: each class's test share is within one row of 15%
    per_class = first.report["class_counts"]
    for label, n_test in per_class["test"].items():
        n = sum(per_class[s].get(label, 0) for s in ("train", "val", "test"))
        assert abs(n_test - round(n * 0.15)) <= 1

    again = prepare_data(spec)
    assert again.report["fingerprint"] == first.report["fingerprint"]
    assert row_set(again.datasets["test"]) == sets["test"]
    other = prepare_data(spec_for({"type": "builtin", "name": "digits"}, seed=4))
    assert row_set(other.datasets["test"]) != sets["test"]
    assert other.report["fingerprint"] == first.report["fingerprint"]  # same data


def test_standardization_is_fitted_on_train_only(ray_cluster, tmp_path):
    frame = sklearn.datasets.load_wine(as_frame=True).frame
    path = tmp_path / "wine.csv"
    frame.to_csv(path, index=False)
    spec = spec_for({"type": "csv", "path": str(path)}, split={"method": "random", "val": 0.2, "test": 0.2})
    prepared = prepare_data(spec)
    pre = prepared.preprocessor
    assert pre.feature_columns == [c for c in frame.columns if c != "target"]
    # Scaled train features have mean 0 and std 1; the held-out splits do not exactly.
    train_x = rows(prepared.datasets["train"])
    np.testing.assert_allclose(train_x.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(train_x.std(0), 1, atol=1e-4)
    raw_mean = frame.drop(columns="target").to_numpy().mean(0)
    assert not np.allclose(pre.center, raw_mean, rtol=1e-6)  # not fitted on all rows
    assert pre.classes == [0, 1, 2]


def test_parquet_with_string_labels_and_selected_columns(ray_cluster, tmp_path):
    iris = sklearn.datasets.load_iris(as_frame=True)
    frame = iris.frame.assign(species=np.asarray(iris.target_names)[iris.target]).drop(columns="target")
    frame["note"] = "free text"
    path = tmp_path / "iris.parquet"
    frame.to_parquet(path)
    features = [c for c in frame.columns if c.endswith("(cm)")]
    spec = spec_for(
        {"type": "parquet", "path": str(path)},
        label="species",
        features={"columns": features, "numeric": "minmax"},
    )
    prepared = prepare_data(spec)
    assert prepared.preprocessor.classes == ["setosa", "versicolor", "virginica"]
    y = rows(prepared.datasets["train"], "y")
    assert set(y.ravel().tolist()) == {0, 1, 2}
    x = rows(prepared.datasets["train"])
    assert x.min() >= 0 and x.max() <= 1 + 1e-6

    with pytest.raises(DataError, match="column 'note' is text, not numeric"):
        prepare_data(spec_for({"type": "parquet", "path": str(path)}, label="species"))
    with pytest.raises(DataError, match="data.label: no column 'kind' in the data"):
        prepare_data(spec_for({"type": "parquet", "path": str(path)}, label="kind"))


def test_missing_values_are_refused_with_the_column_named(ray_cluster, tmp_path):
    frame = pd.DataFrame({"a": np.arange(40.0), "b": np.ones(40), "target": np.arange(40) % 2})
    frame.loc[[1, 2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37], "b"] = np.nan
    path = tmp_path / "gaps.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(DataError, match=r"missing values in b \(13\); set data.clean.missing"):
        prepare_data(spec_for({"type": "csv", "path": str(path)}))


def test_fashion_mnist_from_debian_files(ray_cluster, tmp_path):
    spec = spec_for({"type": "builtin", "name": "fashion_mnist", "limit": 2000}, label="label")
    prepared = prepare_data(spec)
    assert prepared.preprocessor.input_shape == [1, 28, 28]
    batch = prepared.datasets["val"].take_batch(8)
    assert batch["x"].shape == (8, 1, 28, 28) and batch["x"].dtype == np.float32
    missing = spec_for({"type": "builtin", "name": "fashion_mnist", "path": str(tmp_path)}, label="label")
    with pytest.raises(DataError, match="apt-get install dataset-fashion-mnist"):
        prepare_data(missing)
