"""Ctrl-C and `raydl run --resume RUN_DIR` as a user runs them: Ctrl-C during training
(the job's 2 Ray Train workers) exits 130 with one line and keeps the finished epochs; the
run continues in its own run directory from its latest checkpoint, not from epoch 1."""

import json
import signal
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.e2e

RAYDL = [sys.executable, "-m", "raydl.cli"]


EPOCHS = 12


def test_ctrl_c_then_resume_continues_from_the_latest_checkpoint(repo_root, tmp_path):
    proc = subprocess.Popen(
        [
            *RAYDL,
            "run",
            f"{repo_root}/jobs/digits_cnn.yaml",
            f"train.epochs={EPOCHS}",
            # small batches: epochs of about a second once a worker holds its split, so the
            # Ctrl-C after epoch 2 lands well before the last one even on a loaded machine
            "train.batch_size=16",
            "train.early_stopping=null",  # the job's 2 workers: Ray Train's own SIGINT path
            "-o",
            str(tmp_path),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 600
        for line in proc.stdout:  # wait until training has reported two epochs
            if line.strip().startswith("epoch   2") or time.monotonic() > deadline:
                break
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=180)
    finally:
        proc.kill()
    assert proc.returncode == 130, err[-2000:]
    assert "interrupted" in err and "Traceback" not in err
    (run_dir,) = tmp_path.iterdir()
    assert not (run_dir / "metrics.json").exists()
    assert (run_dir / "metrics.jsonl").read_text().startswith('{"train_loss"')  # finished epochs kept
    before = [json.loads(line)["epoch"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]

    out = subprocess.run(
        [*RAYDL, "run", "--resume", str(run_dir)], capture_output=True, text=True, timeout=900
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "resuming from the latest checkpoint" in out.stdout
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    resumed = rows[len(before) :]
    start = resumed[0]["resumed_from_epoch"]
    # Ctrl-C lands while the epoch just printed may still be on its way to Ray Train's
    # controller (its abort does not wait for it), so the latest *recorded* checkpoint is
    # that epoch or the one before; either way not a restart from scratch.
    assert max(before) < EPOCHS, "the Ctrl-C landed after the last epoch: nothing was left to resume"
    assert 1 <= start <= max(before)
    assert [r["epoch"] for r in resumed] == list(range(start + 1, EPOCHS + 1))
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["epochs_run"] == EPOCHS and metrics["accuracy"] > 0.9

    # a finished run has nothing to resume; a folder that is not a run is refused
    again = subprocess.run([*RAYDL, "run", "--resume", str(run_dir)], capture_output=True, text=True)
    assert again.returncode == 2 and "already finished" in again.stderr
    bad = subprocess.run([*RAYDL, "run", "--resume", str(tmp_path)], capture_output=True, text=True)
    assert bad.returncode == 2 and "not a raydl run directory" in bad.stderr


TRIALS = 12  # ci14: 6 trials of a faster data stage all ended before the Ctrl-C landed


def test_ctrl_c_during_a_search_then_tune_resume_finishes_it(repo_root, tmp_path):
    """A search stopped with Ctrl-C continues with `raydl tune --resume RUN_DIR`
    (Tuner.restore): finished trials are kept, not run again; the rest are run."""
    overrides = [
        "tune.search=random",
        # trials of a few seconds each since a worker holds its cached split: enough of them
        # that the Ctrl-C lands before the search ends, even on a loaded machine
        f"tune.num_samples={TRIALS}",
        "tune.max_concurrent_trials=1",
        "tune.scheduler=null",
        "train.epochs=2",
    ]
    err_file = tmp_path / "stderr.txt"
    runs = tmp_path / "runs"
    with open(err_file, "w") as err_out:
        proc = subprocess.Popen(
            [*RAYDL, "tune", f"{repo_root}/jobs/digits_tune.yaml", *overrides, "-o", str(runs)],
            stdout=subprocess.DEVNULL,
            stderr=err_out,
            text=True,
        )
        try:
            # the terminal is quiet (no Tune status lines): wait until the run's own record
            # of ended trials (tune/ended.txt, written on the driver) names the first one
            deadline = time.monotonic() + 600
            finished = False
            while not finished and proc.poll() is None and time.monotonic() < deadline:
                ended = list(runs.glob("*/tune/ended.txt"))
                finished = bool(ended) and bool(ended[0].read_text().strip())
                time.sleep(0.5)
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=180)
        finally:
            proc.kill()
    err = err_file.read_text()
    assert finished, err[-2000:]
    assert proc.returncode != 0, "the search ended before the Ctrl-C took effect: nothing was left to resume"
    assert proc.returncode == 130, err[-2000:]
    assert "raydl tune --resume" in err
    (run_dir,) = runs.iterdir()
    assert not (run_dir / "metrics.json").exists()
    # the Ctrl-C came after the first trial ended, before the search did
    assert 1 <= len((run_dir / "tune" / "ended.txt").read_text().split()) < TRIALS

    out = subprocess.run(
        [*RAYDL, "tune", "--resume", str(run_dir)], capture_output=True, text=True, timeout=900
    )
    assert out.returncode == 0, out.stderr[-3000:]
    table = json.loads((run_dir / "tune" / "trials.json").read_text())
    assert len(table) == TRIALS and {r["status"] for r in table} == {"completed"}
    # every trial trained its two epochs: the ones finished before Ctrl-C were kept, the
    # others ran after the resume; the trial the Ctrl-C cut may have reported an epoch
    # Tune had not yet recorded: it continues from its checkpoint (resumed_from_epoch)
    # and reports that epoch again, but never starts over from epoch 1
    logs = list((run_dir / "ray" / "tune").glob("*/result.json"))
    assert len(logs) == TRIALS
    repeated = 0
    for log in logs:
        rows = [json.loads(line) for line in log.read_text().splitlines()]
        assert rows[0]["epoch"] == 1 and rows[-1]["epoch"] == 2, log
        for before, row in zip(rows, rows[1:]):
            continued = row.get("resumed_from_epoch") == row["epoch"] - 1
            assert row["epoch"] == before["epoch"] + 1 or continued, (log, rows)
        repeated += len(rows) > 2
    assert repeated <= 1
    assert json.loads((run_dir / "metrics.json").read_text())["accuracy"] > 0.5
