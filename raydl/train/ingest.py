"""How the train and val datasets reach the Ray Train workers: split over them, a cached
split in pieces the driver cuts (:class:`SplitIngest`).

Light on purpose: the ``DataConfig`` is pickled into the Train controller and every
worker, and unpickling it imports this module there. In ``raydl.train.trainer`` it drew
in the training loop and torchmetrics (3 s in the controller, on the run's critical
path, before a worker was asked for; 2026-12-06)."""

from __future__ import annotations

import copy
from typing import Any

import ray
import ray.data
from ray.data.dataset import MaterializedDataset
from ray.train import DataConfig


class SplitIngest(DataConfig):
    """Split each dataset over the workers; a materialized one (a cached split) in
    pieces cut by the driver, without a coordinator.

    Ray Train's default ``streaming_split`` starts a coordinator actor per dataset and
    routes every batch through it: on 2 cores a worker's first batch came 3.3–6.0 s
    after it asked, against 0.35–0.5 s for a worker reading its own piece of the blocks
    (a bare 2-worker TorchTrainer on 1,300 rows, 2026-12-03). A cached split's blocks
    are already in the object store, so :meth:`MaterializedDataset.split` (``equal``:
    every worker the same number of rows, in a fixed order that depends on the data
    only, as the deterministic streaming split guaranteed) hands each worker its own
    piece to stream. The driver cuts them, where Ray Data is already warm: cut in the
    Train controller, the first split took 2.8 s. A dataset that is not materialized
    (preprocessed each epoch) keeps the streaming split: cutting it would materialize it.
    """

    def __init__(self, pieces: dict[str, list[MaterializedDataset]], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._pieces = pieces

    @classmethod
    def over(cls, datasets: dict[str, ray.data.Dataset], workers: int, **kwargs: Any) -> SplitIngest:
        pieces = {
            name: ds.split(workers, equal=True)
            for name, ds in datasets.items()
            if isinstance(ds, MaterializedDataset)
        }
        return cls(pieces, datasets_to_split="all", **kwargs)

    def configure(self, datasets, world_size, worker_handles, worker_node_ids, **kwargs):
        # pieces cut for another world size (none here: the worker count is the spec's)
        cut = {n: p for n, p in self._pieces.items() if n in datasets and len(p) == world_size}
        streamed = {n: ds for n, ds in datasets.items() if n not in cut}
        output = (
            super().configure(streamed, world_size, worker_handles, worker_node_ids, **kwargs)
            if streamed
            else [{} for _ in range(world_size)]
        )
        for name, pieces in cut.items():
            for rank, piece in enumerate(pieces):
                piece.context.execution_options = self._resolve_execution_options(name)
                output[rank][name] = piece.iterator()
        return output


def ingest_config(deterministic: bool, datasets: dict[str, ray.data.Dataset], workers: int) -> DataConfig:
    """How the train and val datasets reach the workers: split over all of them
    (:class:`SplitIngest`).

    Deterministic: in dataset order. Ray Data's streaming split then ignores locality
    and hands each worker its blocks in turn by rows received, so which rows a worker
    sees, and in what order, depends on the data and the seed only (not on which worker
    asked first, as it does by default: two runs of one seed differed from their first
    epoch)."""
    if not deterministic:
        return SplitIngest.over(datasets, workers)
    # the driver's options (resource limits), ordered; built by hand because Ray's
    # DataConfig.default_ingest_options() warns of its own deprecated field
    options = copy.deepcopy(ray.data.DataContext.get_current().execution_options)
    options.preserve_order = True
    return SplitIngest.over(datasets, workers, execution_options=options, enable_shard_locality=False)
