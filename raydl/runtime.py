"""Connecting to Ray: an embedded local instance sized to the machine, or a cluster."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator

import ray

from raydl import env
from raydl.spec import JobSpec

log = logging.getLogger(__name__)


def default_num_cpus() -> int:
    # Twice the cores as *logical* CPUs: Train workers reserve one each, and Ray Data's
    # read/map tasks must still find free CPUs or the pipeline stalls (seen on 2 cores).
    return 2 * (os.cpu_count() or 1)


def quiet_ray_data() -> None:
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    for name in ("ray.data", "ray.train", "ray.tune"):
        logging.getLogger(name).setLevel(logging.ERROR)


@contextlib.contextmanager
def connect(spec: JobSpec, verbose: bool = False) -> Iterator[dict[str, float]]:
    """Use the Ray that is already initialized, join ``cluster.address``/``RAY_ADDRESS``,
    or start an embedded local Ray; shut down only what was started here.

    Yields the cluster's total resources.
    """
    started = False
    if not ray.is_initialized():
        address = spec.cluster.address or env.ray_address()
        # Quiet by default: Ray's start-up notes (auth token, dashboard) are not the
        # user's business on a laptop run; --verbose shows them and the workers' logs.
        kwargs = dict(log_to_driver=verbose, logging_level=logging.INFO if verbose else logging.ERROR)
        if address:
            log.info("joining the Ray cluster at %s", address)
            ray.init(address=address, **kwargs)
        else:
            ray.init(
                num_cpus=spec.cluster.num_cpus or default_num_cpus(),
                object_store_memory=env.object_store_bytes(),
                include_dashboard=False,
                **kwargs,
            )
        started = True
    quiet_ray_data()
    try:
        yield ray.cluster_resources()
    finally:
        if started:
            ray.shutdown()
