"""A worker node of a real local cluster is removed (its raylet and every worker on it
SIGKILLed by ``ray.cluster_utils.Cluster.remove_node``):

- while Ray Data prepares the data (a head and one worker node): the preparation
  completes on the head with the same rows, split sizes and fingerprint as the
  undisturbed preparation on the same cluster;
- mid-training (a head and two worker nodes; the one holding a Ray Train worker is
  removed once 2 of 4 epochs are logged): Ray Train restarts the worker group on the
  nodes left from the last checkpoint, and the run replays the undisturbed run's epochs
  exactly — so before the kill it is also a second run of the same seed, which must equal
  the first (the same batches on every worker, the same dropout).

Each is ``benchmarks/reliability.py``'s scenario of that name, so CI also keeps the
benchmark working. The clusters run in a child process: the session's single-node Ray
may already be connected in this one."""

import json
import os
import signal
import subprocess
import sys

import pytest


def _scenario(repo_root: str, tmp_path, *args: str) -> dict:
    """The one row ``benchmarks/reliability.py --json *args`` prints, run in a child."""
    child = subprocess.Popen(
        [sys.executable, f"{repo_root}/benchmarks/reliability.py", "--json", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        env=dict(os.environ, PYTHONPATH=repo_root),
        start_new_session=True,  # its Ray nodes are in its process group: killed with it
    )
    try:
        out, err = child.communicate(timeout=800)
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
    assert child.returncode == 0, err[-3000:]
    (row,) = json.loads(out.strip().splitlines()[-1])
    return row


@pytest.mark.timeout(600)
def test_node_lost_during_data_prep_same_rows_splits_and_fingerprint(tmp_path, repo_root):
    row = _scenario(repo_root, tmp_path, "--only", "data-prep", "--quick", "--files", "8")
    d = row["details"]
    # the fault was real: the node was removed while a task held its CPUs, and is gone
    assert d["killed"] and d["busy_cpus_at_kill"] > 0, d
    assert d["alive_nodes_after"] == 1
    assert d["disturbed"] == d["undisturbed"], d
    assert d["undisturbed"]["rows"] == 1797 == sum(d["disturbed"]["counted"].values())
    assert row["lost"] == "0 rows"


def _numbers(rows: list[dict]) -> list[dict]:
    return [{k: r[k] for k in ("epoch", "train_loss", "val_loss", "val_accuracy", "lr")} for r in rows]


@pytest.mark.timeout(900)
def test_node_lost_mid_training_restarts_on_what_is_left_and_replays_the_calm_run(tmp_path, repo_root):
    epochs, kill_after = 4, 2
    row = _scenario(
        repo_root, tmp_path, "--only", "training", "--epochs", str(epochs), "--kill-after", str(kill_after)
    )
    d = row["details"]
    assert d["killed"] and d["alive_nodes_after"] == 2, d  # the head and one worker node left
    calm, hit = d["calm_epochs"], d["hit_epochs"]
    resumed = [r for r in hit if "resumed_from_epoch" in r]
    assert resumed, "no epoch ran after a restore: the node's loss did not restart the worker group"
    start = resumed[0]["resumed_from_epoch"]
    # restarted at the last checkpoint (every epoch): the one logged last, or the one
    # before if Ray Train had not registered it yet — at most one completed epoch repeated
    logged = d["epochs_logged_at_kill"]
    assert kill_after <= logged < epochs and logged - 1 <= start <= logged, d
    assert [r["epoch"] for r in resumed] == list(range(start + 1, epochs + 1))
    assert d["epochs_run"] == epochs
    before = hit[: hit.index(resumed[0])]
    # before the kill: a second run of the same seed, equal to the first to the last digit
    assert _numbers(before) == _numbers(calm[: len(before)])
    # after it: the restored weights, optimizer, schedule and batches replay the calm run
    assert _numbers(resumed) == _numbers(calm[start:])
    assert d["accuracy_disturbed"] == d["accuracy_undisturbed"]
