"""A worker node of a real two-node cluster is removed (its raylet and workers killed)
while Ray Data prepares the data: the preparation completes on the head with the same
rows, split sizes and fingerprint as the undisturbed preparation on the same cluster.

The one multi-node fault in CI, as the cheapest: the scenario is
``benchmarks/reliability.py``'s ``data-prep`` (run here with ``--quick``), so CI also keeps
the benchmark working. Node loss mid-training and a head's loss are measured there only.
The cluster runs in a child process: the session's single-node Ray may already be
connected in this one."""

import json
import os
import signal
import subprocess
import sys

import pytest


@pytest.mark.timeout(600)
def test_node_lost_during_data_prep_same_rows_splits_and_fingerprint(tmp_path, repo_root):
    child = subprocess.Popen(
        [
            sys.executable,
            f"{repo_root}/benchmarks/reliability.py",
            *("--only", "data-prep", "--quick", "--json", "--files", "8"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        env=dict(os.environ, PYTHONPATH=repo_root),
        start_new_session=True,  # its Ray nodes are in its process group: killed with it
    )
    try:
        out, err = child.communicate(timeout=500)
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
    assert child.returncode == 0, err[-3000:]
    (row,) = json.loads(out.strip().splitlines()[-1])
    d = row["details"]
    # the fault was real: the node was removed while a task held its CPUs, and is gone
    assert d["killed"] and d["busy_cpus_at_kill"] > 0, d
    assert d["alive_nodes_after"] == 1
    assert d["disturbed"] == d["undisturbed"], d
    assert d["undisturbed"]["rows"] == 1797 == sum(d["disturbed"]["counted"].values())
    assert row["lost"] == "0 rows"
