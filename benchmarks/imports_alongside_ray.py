#!/usr/bin/env python
"""The start of ``raydl run``: the pipeline's imports and the embedded Ray's start, one
after the other against side by side.

``ray.init`` mostly waits for the processes it starts, and the driver's imports keep one
core busy, so ``raydl run`` imports torch and torchmetrics on a second thread while Ray
starts (``raydl.cli.run_spec``: ``runtime.connect(..., meanwhile=ALONGSIDE_RAY)``). Each
try is a fresh interpreter that loads the spec, then either

(a) serial: imports ``raydl.pipeline``, then enters ``runtime.connect`` (what ``raydl
    run`` did before), or
(b) alongside: enters ``runtime.connect`` with ``meanwhile=ALONGSIDE_RAY``, then imports
    ``raydl.pipeline`` (what ``raydl run`` does),

and reports the seconds from its start until Ray is up and the pipeline imported. The
two alternate, ``--pairs`` times. It prints each try, the medians and their ratio, and
asserts nothing. Run it on an otherwise idle machine.

    .venv/bin/python benchmarks/imports_alongside_ray.py            # 3 pairs
    .venv/bin/python benchmarks/imports_alongside_ray.py --pairs 5
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # startup's helpers
from startup import REPO, child_env  # noqa: E402

TRY = r"""
import json, sys, time
T0 = time.time()
from raydl.checks import load_spec
from raydl.cli import ALONGSIDE_RAY
from raydl.runtime import connect

spec = load_spec(sys.argv[2], [])
if sys.argv[1] == "serial":
    import raydl.pipeline  # noqa: F401
    with connect(spec):
        ready = time.time()
else:
    with connect(spec, meanwhile=ALONGSIDE_RAY):
        import raydl.pipeline  # noqa: F401,F811
        ready = time.time()
print("RESULT " + json.dumps({"ready_s": ready - T0}))
"""


def one(mode: str, spec: Path) -> float:
    out = subprocess.run(
        [sys.executable, "-c", TRY, mode, str(spec)],
        capture_output=True,
        text=True,
        env=child_env(),
        cwd=REPO,
        timeout=300,
        check=False,
    )
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")]
    if out.returncode != 0 or not lines:
        raise RuntimeError(f"{mode} failed (exit {out.returncode}):\n{out.stderr[-3000:]}")
    return float(json.loads(lines[-1].split(" ", 1)[1])["ready_s"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=3, help="alternating (serial, alongside) pairs")
    parser.add_argument("--spec", type=Path, default=REPO / "jobs" / "fashion_mnist_cnn.yaml")
    args = parser.parse_args(argv)
    load_before = os.getloadavg()
    times: dict[str, list[float]] = {"serial": [], "alongside": []}
    for i in range(args.pairs):
        for mode in times:
            times[mode].append(one(mode, args.spec))
            print(f"pair {i + 1}  {mode:9}  Ray up and the pipeline imported after {times[mode][-1]:.2f} s")
    serial, alongside = (statistics.median(times[m]) for m in times)
    print(
        f"\nmedian: serial {serial:.2f} s, alongside {alongside:.2f} s; "
        f"alongside / serial {alongside / serial:.2f} ({serial - alongside:+.2f} s saved)"
    )
    print(f"{os.cpu_count()} CPUs; load average {load_before} before, {os.getloadavg()} after")
    return 0


if __name__ == "__main__":
    sys.exit(main())
