"""One real local Ray for the whole integration session (starting Ray costs seconds)."""

import pytest
import ray

from raydl.runtime import quiet_ray_data


@pytest.fixture(scope="session")
def ray_cluster():
    # 4 logical CPUs on 2 cores: 2 Train workers hold one each, Ray Data gets the rest.
    ray.init(
        address="local",
        num_cpus=4,
        object_store_memory=512 * 1024 * 1024,
        include_dashboard=False,
        log_to_driver=False,
    )
    quiet_ray_data()
    yield ray
    ray.shutdown()
