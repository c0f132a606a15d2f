"""Submitting to a real multi-node Ray cluster (cluster/local_cluster.sh: a head and one
worker node, its own temp dir and ports): `raydl submit` streams logs and ends SUCCEEDED
with the run directory at cluster.storage; the plain `ray job submit` CLI does the same;
a failing job exits non-zero with the job's error shown."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

REPO = Path(__file__).parents[2]
BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    env = {
        **os.environ,
        "RAYDL_CLUSTER_DIR": f"/tmp/raydl-submit-e2e-{os.getpid()}",
        "GCS_PORT": str(_free_port()),
        "DASHBOARD_PORT": str(_free_port()),
        "AGENT_PORT": str(_free_port()),
        # a head and one worker node, as a laptop user's first cluster would be
        "HEAD_CPUS": "2",
        "WORKERS": "1",
        "WORKER_CPUS": "2",
        "RAY": str(BIN / "ray"),
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
    }
    script = str(REPO / "cluster" / "local_cluster.sh")
    try:
        out = subprocess.run([script, "start"], env=env, capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
        yield f"http://127.0.0.1:{env['DASHBOARD_PORT']}", env
    finally:
        subprocess.run([script, "stop"], env=env, capture_output=True, timeout=60)


def run(cmd: list[str], env: dict, timeout: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout)


QUICK = ["train.epochs=1", "train.scheduler.warmup_epochs=0", "train.workers=2", "train.cpus_per_worker=0.5"]


def test_raydl_submit_streams_logs_and_stores_the_run(cluster, tmp_path):
    address, env = cluster
    storage = tmp_path / "storage"
    out = run(
        [
            str(BIN / "raydl"),
            "submit",
            "jobs/digits_cnn.yaml",
            *QUICK,
            f"cluster.storage=file://{storage}",
            "--address",
            address,
            "--working-dir",
            ".",
        ],
        env,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "SUCCEEDED" in out.stderr and "test metrics" in out.stdout  # the job's own output, streamed
    (run_dir,) = storage.iterdir()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert 0 <= metrics["accuracy"] <= 1 and metrics["epochs_run"] == 1
    # the job ran on the two-node cluster: the worker node's resources were part of it
    resources = json.loads((run_dir / "manifest.json").read_text())["ray_resources"]
    assert resources["CPU"] == 4 and resources["raydl_worker_1"] == 1 and resources["raydl_head"] == 1
    job_id = out.stderr.split("submitted ", 1)[1].split()[0]
    status = run([str(BIN / "raydl"), "status", job_id, "--address", address], env)
    assert status.returncode == 0 and "SUCCEEDED" in status.stdout
    listed = run([str(BIN / "raydl"), "jobs", "--address", address], env)
    assert job_id in listed.stdout and "digits-cnn" in listed.stdout
    logs = run([str(BIN / "raydl"), "logs", job_id, "--address", address], env)
    assert "test metrics" in logs.stdout


def test_plain_ray_job_submit(cluster, tmp_path):
    address, env = cluster
    storage = tmp_path / "plain"
    out = run(
        [
            str(BIN / "ray"),
            "job",
            "submit",
            "--address",
            address,
            "--working-dir",
            ".",
            "--runtime-env-json",
            json.dumps({"excludes": [".venv", ".git", "runs"]}),
            "--",
            "raydl",
            "run",
            "jobs/digits_cnn.yaml",
            *QUICK,
            f"cluster.storage={storage}",
        ],
        {**env, "RAY_AUTH_MODE": "token"},
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "succeeded" in out.stdout.lower()
    (run_dir,) = storage.iterdir()
    assert "accuracy" in json.loads((run_dir / "metrics.json").read_text())


def test_failing_job_exits_non_zero_with_its_error(cluster, tmp_path):
    address, env = cluster
    # valid spec, but the data file does not exist on the cluster: the job itself fails
    spec = tmp_path / "wd" / "missing.yaml"
    spec.parent.mkdir()
    spec.write_text(
        "name: missing\n"
        "data: {source: {type: csv, path: /nonexistent/data.csv}, task: classification, label: y}\n"
        "model: {arch: mlp}\n"
    )
    out = run(
        [str(BIN / "raydl"), "submit", str(spec), "--address", address, "--working-dir", str(spec.parent)],
        env,
        timeout=600,
    )
    assert out.returncode == 1, out.stdout[-2000:] + out.stderr[-2000:]
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("error: job ") and "FAILED" in last, out.stderr[-2000:]
    assert "/nonexistent/data.csv" in out.stdout + out.stderr  # the job's own error, streamed


def test_unreachable_address_is_one_clear_line(tmp_path):
    out = subprocess.run(
        [
            str(BIN / "raydl"),
            "submit",
            str(REPO / "jobs" / "digits_cnn.yaml"),
            "--address",
            f"http://127.0.0.1:{_free_port()}",
            "--working-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 2 and "Traceback" not in out.stderr
    (line,) = out.stderr.strip().splitlines()
    assert line.startswith("error: --address: cannot reach the Ray job API"), line
