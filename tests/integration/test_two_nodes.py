"""On a two-node local cluster (ray.cluster_utils.Cluster, its own temp dir), the data
stage's preprocessing tasks run on both nodes.

The cluster runs in a child process: the session's single-node Ray (the ``ray_cluster``
fixture) may already be connected in this one.
"""

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration

CHILD = r"""
import json, os, sys
import ray
from ray._common.utils import get_default_ray_temp_dir
from ray.cluster_utils import Cluster
from raydl.data.prepare import prepare_data
from raydl.runtime import quiet_ray_data
from raydl.spec import validate_spec

temp_dir = sys.argv[1]
os.makedirs(get_default_ray_temp_dir(), exist_ok=True)  # Cluster() writes /tmp/ray/ray_current_cluster
node = {"num_cpus": 1, "object_store_memory": 96 * 1024 * 1024}
head = node | {"temp_dir": temp_dir, "include_dashboard": False}
cluster = Cluster(initialize_head=True, head_node_args=head)
try:
    cluster.add_node(**node)
    ray.init(address=cluster.address, log_to_driver=False)
    cluster.wait_for_nodes()
    quiet_ray_data()
    spec = validate_spec({
        "name": "two-nodes",
        "data": {"source": {"type": "builtin", "name": "wine"}, "label": "target",
                 "clean": {"dedupe": True}, "cache": "always"},
        "model": {"arch": "mlp"},
        # a deterministic run lays the cached train split out anew in equal blocks (one
        # block for these 125 rows), in one place; here the blocks must stay where the
        # preprocessing tasks made them
        "train": {"deterministic": False},
    })
    prepared = prepare_data(spec)
    # the cached train split is the output of the preprocessing tasks: where its blocks
    # were made is where those tasks ran
    bundles = prepared.datasets["train"].iter_internal_ref_bundles()
    refs = [ref for bundle in bundles for ref in bundle.block_refs]
    where = ray.experimental.get_object_locations(refs)
    nodes = sorted({n for loc in where.values() for n in loc["node_ids"]})
    alive = sorted(n["NodeID"] for n in ray.nodes() if n["Alive"])
    print(json.dumps({"block_nodes": nodes, "cluster_nodes": alive, "blocks": len(refs),
                      "rows": prepared.report["split"]["rows"]}))
finally:
    ray.shutdown()
    cluster.shutdown()
"""


def test_preprocessing_runs_on_both_nodes(tmp_path, repo_root):
    temp_dir = f"/tmp/raydl-2n-{os.getpid()}"
    env = dict(
        os.environ,
        PYTHONPATH=repo_root,
        RAY_raylet_start_wait_time_s="120",
        # small blocks would be inlined in their owner's memory and have no node; keep every
        # block in the object store of the node whose task made it
        RAY_max_direct_call_object_size="0",
    )
    try:
        out = subprocess.run(
            [sys.executable, "-c", CHILD, temp_dir],
            capture_output=True,
            text=True,
            timeout=400,
            env=env,
            cwd=tmp_path,
        )
    finally:
        subprocess.run(["pkill", "-f", temp_dir], check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert len(result["cluster_nodes"]) == 2
    assert result["block_nodes"] == result["cluster_nodes"], result
    assert sum(result["rows"].values()) == 178
