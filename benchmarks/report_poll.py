#!/usr/bin/env python
"""How often Ray Train's controller polls its workers, and what a run pays for it.

A Ray Train worker's ``ray.train.report`` puts its result on a queue of one; the
controller takes it when it next polls the worker group, every
``RAY_TRAIN_HEALTH_CHECK_INTERVAL_S`` (Ray's default 2 s). An epoch shorter than the
interval waits out the rest of it, and the run's end is seen up to one interval late.
raydl sets 0.2 s unless the environment already holds a value
(``raydl.train.trainer.POLL_INTERVAL_S``).

This runs ``raydl run`` (the CLI, embedded Ray, 2 Ray Train workers) on one job twice,
in one go: at Ray's default and at raydl's, and prints wall seconds, the seconds from
the CLI's first epoch line to its last (over the epochs in between), and their ratios.
Same spec, same seed: both runs train the same epochs to the same numbers.

It asserts nothing. Run it on an otherwise idle machine:

    python benchmarks/report_poll.py                             # the digits CNN job
    python benchmarks/report_poll.py --job jobs/digits_cnn.yaml train.epochs=6
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RAY_DEFAULT_S = "2.0"  # ray.train.v2._internal.constants.DEFAULT_HEALTH_CHECK_INTERVAL_S


def run_once(job: str, overrides: list[str], interval: str | None, out: Path) -> dict:
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", WANDB_MODE="offline")
    env.pop("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", None)
    if interval is not None:
        env["RAY_TRAIN_HEALTH_CHECK_INTERVAL_S"] = interval
    cmd = [str(Path(sys.executable).parent / "raydl"), "run", job, *overrides, "-o", str(out)]
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    epoch_at = []
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.strip().startswith("epoch "):
            epoch_at.append(time.monotonic() - t0)
    err = proc.stderr.read() if proc.stderr else ""
    if proc.wait() != 0:
        raise RuntimeError(f"raydl run failed (exit {proc.returncode}):\n{err[-3000:]}")
    wall = time.monotonic() - t0
    (run_dir,) = out.iterdir()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    return {
        "interval_s": interval or "raydl's",
        "wall_s": wall,
        "epochs": len(epoch_at),
        "first_to_last_epoch_s": epoch_at[-1] - epoch_at[0] if len(epoch_at) > 1 else None,
        "last_epoch_to_exit_s": wall - epoch_at[-1] if epoch_at else None,
        "accuracy": metrics.get("accuracy"),
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--job", default="jobs/digits_cnn.yaml")
    p.add_argument("overrides", nargs="*", help="dotted overrides for the job (train.epochs=6, …)")
    args = p.parse_args(argv)
    load = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="raydl-poll-") as work:
        rows = [
            run_once(args.job, args.overrides, RAY_DEFAULT_S, Path(work) / "default"),
            run_once(args.job, args.overrides, None, Path(work) / "raydl"),
        ]
    ray_default, ours = rows
    print(f"\n{args.job} {' '.join(args.overrides)}: raydl run, 2 Ray Train workers (seconds)")
    print(f"load average before: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}\n")
    print("| measure | Ray's poll (2 s) | raydl's poll (0.2 s) | raydl / Ray's |")
    print("| --- | ---: | ---: | ---: |")
    for key, name in (
        ("wall_s", "wall, start to exit"),
        ("first_to_last_epoch_s", "first epoch line to last"),
        ("last_epoch_to_exit_s", "last epoch line to exit"),
    ):
        a, b = ray_default[key], ours[key]
        ratio = f"{b / a:.2f}" if a and b is not None else "-"
        print(f"| {name} | {a:.1f} | {b:.1f} | {ratio} |")
    print(f"| epochs | {ray_default['epochs']} | {ours['epochs']} | |")
    print(f"| test accuracy | {ray_default['accuracy']:.4f} | {ours['accuracy']:.4f} | |")


if __name__ == "__main__":
    main()
