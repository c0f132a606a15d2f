"""The head node dies mid-training, for real: a `ray start --head` cluster's GCS and raylet
are SIGKILLed after some epochs. `raydl run` ends with one line (the cluster is lost, in
which stage, and the command to continue) and exit 1, not a traceback; `raydl run
--resume` on its run directory, on a new Ray, continues from the last checkpoint that
reached the run directory and finishes every epoch once."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

BIN = Path(sys.executable).parent
# digits epochs take about 0.2 s since a worker holds its cached split (raydl/train/batches.py):
# enough of them that the head dies mid-run, whatever the workers finish before they notice
EPOCHS = 40


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pids_of(temp_dir: str, names: tuple[str, ...] = ()) -> list[int]:
    """This cluster's processes (their command lines name its own temp dir)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if temp_dir in cmd and (not names or any(n in cmd for n in names)):
            pids.append(int(entry.name))
    return pids


def _kill(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture
def head():
    temp_dir = f"/tmp/rdl-head-{os.getpid()}"
    port = _free_port()
    env = {**os.environ, "RAY_ADDRESS": ""}
    start = [str(BIN / "ray"), "start", "--head", f"--port={port}", "--num-cpus=4", f"--temp-dir={temp_dir}"]
    start += ["--include-dashboard=false", "--object-store-memory=300000000", "--disable-usage-stats"]
    out = subprocess.run(start, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    try:
        yield f"127.0.0.1:{port}", temp_dir
    finally:
        _kill(_pids_of(temp_dir))


def test_head_killed_mid_training_then_resume_continues_from_the_last_checkpoint(head, tmp_path, repo_root):
    address, temp_dir = head
    runs = tmp_path / "runs"
    env = {**os.environ, "RAY_ADDRESS": address}
    cmd = [str(BIN / "raydl"), "run", "jobs/digits_cnn.yaml", f"train.epochs={EPOCHS}"]
    cmd += ["train.early_stopping=null", "--output", str(runs)]
    job = subprocess.Popen(
        cmd, cwd=repo_root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 600
    seen = 0
    while time.monotonic() < deadline and job.poll() is None:
        logs = list(runs.glob("*/metrics.jsonl"))
        seen = len(logs[0].read_text().splitlines()) if logs else 0
        if seen >= 2:
            break
        time.sleep(0.2)
    assert job.poll() is None and 2 <= seen < EPOCHS, (
        f"the run ended before the head could be killed ({seen})"
    )
    _kill(_pids_of(temp_dir, ("gcs_server", "raylet")))  # the head node is gone
    _, err = job.communicate(timeout=300)

    assert job.returncode == 1, err[-3000:]
    assert "Traceback" not in err, err[-3000:]
    (run_dir,) = runs.iterdir()
    (line,) = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert "lost the Ray cluster: its head at" in line and "in train" in line
    assert line.endswith(f"raydl run --resume {run_dir}")
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "failed" and manifest["stage"] == "train"
    # the epochs that reached the run directory (the workers may finish some after the kill)
    reached = len((run_dir / "metrics.jsonl").read_text().splitlines())
    assert reached < EPOCHS, "the run finished its epochs before the head was lost"

    # a new Ray (embedded: RAY_ADDRESS unset), the same run directory
    done = subprocess.run(
        [str(BIN / "raydl"), "run", "--resume", str(run_dir)],
        cwd=repo_root,
        env={**os.environ, "RAY_ADDRESS": ""},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [json.loads(ln) for ln in (run_dir / "metrics.jsonl").read_text().splitlines()]
    resumed = [r for r in rows if "resumed_from_epoch" in r]
    start = resumed[0]["resumed_from_epoch"]
    # from the last checkpoint that reached storage: at most the epoch in flight is repeated
    assert max(seen - 1, 1) <= start <= reached + 1, (seen, reached, start)
    assert [r["epoch"] for r in resumed] == list(range(start + 1, EPOCHS + 1))
    assert json.loads((run_dir / "metrics.json").read_text())["accuracy"] >= 0.9
    assert json.loads((run_dir / "manifest.json").read_text())["status"] == "succeeded"
