"""Every split method on a real local Ray: no row (or group) in two splits, time order
kept across the cuts, k folds that partition the non-test rows."""

import numpy as np
import pandas as pd
import pytest
import ray

from raydl.data import columns, split
from raydl.data.prepare import fold_datasets, prepare_data
from raydl.errors import DataError, SpecError
from raydl.spec import validate_spec

pytestmark = pytest.mark.integration

N = 400


@pytest.fixture(scope="module")
def table(tmp_path_factory) -> str:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "id": np.arange(N, dtype=np.float64),  # unique: names a row after preprocessing
            "a": rng.normal(size=N),
            "day": pd.date_range("2026-01-01", periods=N, freq="D").astype(str)[rng.permutation(N)],
            "user": rng.integers(0, 37, size=N),
            "target": rng.integers(0, 2, size=N),
        }
    )
    path = tmp_path_factory.mktemp("splits") / "rows.csv"
    frame.to_csv(path, index=False)
    return str(path)


def spec_for(path: str, split: dict) -> object:
    return validate_spec(
        {
            "name": "t",
            "data": {
                "source": {"type": "csv", "path": path},
                "label": "target",
                "features": {"columns": ["id", "a", "user"], "numeric": "none"},
                "split": split,
            },
            "model": {"arch": "mlp"},
        }
    )


def column_of(ds, index: int) -> np.ndarray:
    parts = [b["x"][:, index] for b in ds.iter_batches(batch_format="numpy")]
    return np.concatenate(parts) if parts else np.zeros(0)


def ids(ds) -> set[int]:
    return set(column_of(ds, 0).astype(int).tolist())


def assert_no_leak(sets: dict[str, set]) -> None:
    names = list(sets)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            assert not sets[a] & sets[b], f"{a} and {b} share {sorted(sets[a] & sets[b])[:5]}"


@pytest.mark.parametrize(
    "split",
    [
        {"method": "random", "val": 0.2, "test": 0.2},
        {"method": "stratified", "val": 0.2, "test": 0.2},
        {"method": "group", "column": "user", "val": 0.2, "test": 0.2},
        {"method": "time", "column": "day", "val": 0.2, "test": 0.2},
    ],
    ids=lambda s: s["method"],
)
def test_no_row_is_in_two_splits(ray_cluster, table, split):
    prepared = prepare_data(spec_for(table, split))
    sets = {name: ids(ds) for name, ds in prepared.datasets.items()}
    assert_no_leak(sets)
    assert set().union(*sets.values()) == set(range(N))  # and none is lost
    rows = prepared.report["split"]["rows"]
    assert {k: len(v) for k, v in sets.items()} == rows
    assert abs(rows["test"] - 0.2 * N) <= 0.05 * N

    frame = pd.read_csv(table)
    if split["method"] == "group":
        users = {name: set(frame.user[frame.id.isin(s)]) for name, s in sets.items()}
        assert_no_leak(users)
    if split["method"] == "time":
        days = {name: pd.to_datetime(frame.day[frame.id.isin(s)]) for name, s in sets.items()}
        assert days["train"].max() < days["val"].min() and days["val"].max() < days["test"].min()
        assert rows == {"train": 240, "val": 80, "test": 80}  # distinct days: exact cuts


def test_kfold_folds_partition_the_non_test_rows(ray_cluster, table):
    prepared = prepare_data(spec_for(table, {"method": "kfold", "k": 4, "test": 0.2}))
    assert_no_leak({name: ids(ds) for name, ds in prepared.datasets.items()})
    test = ids(prepared.datasets["test"])
    folds = prepared.report["split"]["folds"]
    assert len(folds) == 4 and sum(folds) == N - len(test)
    vals = []
    for fold in range(4):
        train_ds, val_ds, _ = fold_datasets(prepared, fold)
        train, val = ids(train_ds), ids(val_ds)
        assert_no_leak({"train": train, "val": val, "test": test})
        assert train | val | test == set(range(N))
        assert len(val) == folds[fold]
        vals.append(val)
    assert_no_leak({str(i): v for i, v in enumerate(vals)})
    assert vals[0] == ids(prepared.datasets["val"])  # a plain run validates on fold 0
    with pytest.raises(DataError, match="fold: must be in 0..3"):
        fold_datasets(prepared, 4)


def test_split_column_and_k_are_required():
    with pytest.raises(SpecError) as e:
        spec_for("x.csv", {"method": "time"})
    assert "data.split.column: the time split needs the column it goes by" in str(e.value)
    with pytest.raises(SpecError, match="data.split.k: kfold needs"):
        spec_for("x.csv", {"method": "kfold"})


def test_a_label_sorted_source_reaches_training_shuffled(ray_cluster, tmp_path):
    """A CSV sorted by label (as a folder-per-class image source is): the cached train
    split is shuffled once, so a batch is not one class; the same seed, the same order."""
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(size=900), "label": np.repeat([0, 1, 2], 300)})
    path = tmp_path / "sorted.csv"
    frame.to_csv(path, index=False)
    spec = validate_spec(
        {
            "name": "sorted",
            "data": {"source": {"type": "csv", "path": str(path)}, "label": "label", "cache": "always"},
            "model": {"arch": "mlp"},
        }
    )
    first = prepare_data(spec).datasets["train"].take_batch(64)["y"]
    assert len(set(first.tolist())) == 3, first
    again = prepare_data(spec).datasets["train"].take_batch(64)["y"]
    np.testing.assert_array_equal(first, again)


def test_a_cached_train_split_has_the_same_blocks_every_time(ray_cluster, tmp_path):
    """Ray Data hands whole blocks to the training workers, so a reproducible run needs
    the same blocks, not only the same rows: a sort's blocks differ from run to run."""
    rng = np.random.default_rng(1)
    path = tmp_path / "rows.csv"
    frame = pd.DataFrame({"a": rng.normal(size=3000), "label": rng.integers(0, 3, size=3000)})
    frame.to_csv(path, index=False)
    spec = validate_spec(
        {
            "name": "blocks",
            "data": {"source": {"type": "csv", "path": str(path)}, "label": "label", "cache": "always"},
            "model": {"arch": "mlp"},
        }
    )

    def layout():
        train = prepare_data(spec).datasets["train"]
        blocks = list(train.iter_batches(batch_size=None, batch_format="numpy"))
        return [len(b["y"]) for b in blocks], np.concatenate([b["x"][:, 0] for b in blocks])

    sizes, rows = layout()
    for _ in range(2):
        again_sizes, again_rows = layout()
        assert again_sizes == sizes
        np.testing.assert_array_equal(again_rows, rows)
    assert len(set(sizes[:-1])) <= 1 and sizes[-1] <= sizes[0], sizes  # equal blocks, the rest last


def test_no_split_depends_on_how_many_blocks_a_builtin_is_read_in(ray_cluster, monkeypatch):
    """A builtin's rows become as many source blocks as their size asks for; the splits,
    their order, the fitted scaling and a cached train split's blocks are the same
    whether digits is read in one block or in eight."""
    spec = validate_spec(
        {
            "name": "source-blocks",
            "data": {"source": {"type": "builtin", "name": "digits"}, "label": "target", "cache": "always"},
            "model": {"arch": "mlp"},
        }
    )

    def splits():
        prepared = prepare_data(spec)
        out = {}
        for name, ds in prepared.datasets.items():
            parts = list(ds.iter_batches(batch_size=None, batch_format="numpy"))
            out[name] = (
                [len(p["y"]) for p in parts] if name == "train" else None,
                {k: np.concatenate([p[k] for p in parts]) for k in ("x", "y")},
            )
        return out

    assert columns.source_blocks({"x": np.zeros((1797, 64))}) == 1
    # on a cluster, a builtin spreads over the nodes (test_two_nodes.py) whatever its size
    assert columns.source_blocks({"x": np.zeros((1797, 64))}, nodes=2) == columns.SOURCE_BLOCKS
    one = splits()
    monkeypatch.setattr(columns, "SOURCE_BLOCK_BYTES", 64 * 1024)
    assert columns.source_blocks({"x": np.zeros((1797, 64))}) == columns.SOURCE_BLOCKS
    eight = splits()
    for name in ("train", "val", "test"):
        assert eight[name][0] == one[name][0], name  # the train split's blocks
        for k in ("x", "y"):
            np.testing.assert_array_equal(eight[name][1][k], one[name][1][k], err_msg=f"{name}.{k}")


def test_equal_blocks_cut_in_one_pass_are_the_blocks_of_two(ray_cluster, monkeypatch):
    """A train split whose row count and row size are known is cut into its equal blocks
    (the last one the rest) in the pass that computes it; a guess that is off is recut.
    All three give one layout."""
    monkeypatch.setattr(split, "EVEN_BLOCK_BYTES", 16 * 1024)
    # as in a deterministic run (prepare_data's _ordered), the one kind cut into even blocks
    monkeypatch.setattr(ray.data.DataContext.get_current().execution_options, "preserve_order", True)
    rows = ray.data.range_tensor(3000, shape=(8,), override_num_blocks=3).map_batches(
        lambda b: {"x": b["data"].astype(np.float32), "y": b["data"][:, 0]}, batch_format="numpy"
    )

    def layout(blocks):
        parts = list(blocks.iter_batches(batch_size=None, batch_format="numpy"))
        return [len(p["y"]) for p in parts], np.concatenate([p["y"] for p in parts])

    sizes, order = layout(split.even_blocks(rows))
    assert len(sizes) > 3 and len(set(sizes[:-1])) == 1 and sizes[-1] <= sizes[0], sizes
    np.testing.assert_array_equal(order, np.arange(3000))
    row_bytes = 8 * 4 + 8 + 8  # x float32 (8,) with its offset, y int64
    for guess in (row_bytes, 1.0):  # right; far off (one block), so recut
        again_sizes, again_order = layout(split.even_blocks(rows, rows=3000, row_bytes=guess))
        assert again_sizes == sizes
        np.testing.assert_array_equal(again_order, order)
