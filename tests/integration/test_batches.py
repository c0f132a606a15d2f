"""A worker's batches of a cached split (raydl/train/batches.py), on real Ray Data pieces:
held after one read, every train epoch visits each row once in a seeded order (the same
seed the same order, as a resumed run needs), val passes in order, and the rows are the
ones the streamed pass gives."""

import numpy as np
import ray.data
import torch

from raydl.train.batches import ShardBatches, held_splits

CPU = torch.device("cpu")


def _pieces(rows: int = 203):
    x = np.arange(rows * 4, dtype=np.float32).reshape(rows, 1, 2, 2)
    ds = ray.data.from_items([{"x": x[i], "y": i} for i in range(rows)], override_num_blocks=5).materialize()
    return ds, ds.split(2, equal=True)


def _ids(batches) -> list[int]:
    return [int(v) for b in batches for v in b["y"]]


def test_a_held_piece_is_read_once_and_each_epoch_visits_its_rows_once_in_a_seeded_order(ray_cluster):
    ds, (piece, _) = _pieces()
    assert held_splits({"train": ds, "val": ds, "test": ds}, workers=2) == ["train", "val"]
    assert held_splits({"train": ds.map(lambda r: r)}, workers=2) == []  # not cached: streams

    streamed = ShardBatches(piece.iterator(), hold=False)
    held = ShardBatches(piece.iterator(), hold=True)
    in_order = _ids(streamed.epoch(16, CPU, train=False))
    assert _ids(held.epoch(16, CPU, train=False)) == in_order  # val: the piece's rows in order

    first, again, other = (_ids(held.epoch(16, CPU, train=True, shuffle_seed=s)) for s in (7, 7, 8))
    assert sorted(first) == sorted(in_order) and len(first) == len(set(first)) == 101
    assert first == again and first != other and first != in_order
    batch = next(held.epoch(16, CPU, train=True, shuffle_seed=7))
    assert batch["x"].shape == (16, 1, 2, 2) and batch["x"].dtype == torch.float32
    np.testing.assert_array_equal(batch["x"][:, 0, 0, 0].numpy() / 4, batch["y"].numpy())  # rows stay whole
    assert (
        sum(len(b["y"]) for b in held.epoch(16, CPU, train=True, shuffle_seed=1)) == 101
    )  # a last short batch


def test_a_piece_over_the_hold_limit_streams(ray_cluster):
    ds, _ = _pieces(40)
    limit = ds.size_bytes() // 4
    assert held_splits({"train": ds}, workers=2, limit=limit) == []  # half each: over the limit
    assert held_splits({"train": ds}, workers=8, limit=limit) == ["train"]  # an eighth each fits
