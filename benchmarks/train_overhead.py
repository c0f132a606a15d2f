#!/usr/bin/env python
"""raydl's Ray Train DDP against plain ``torchrun`` DDP, side by side, in one run.

The project claims that raydl's 2-worker Ray Train DDP reaches at least 0.95x the steady
state throughput of plain torchrun DDP. This script measures both on the same data,
model, optimizer and batch size:

(a) raydl, through its own code: ``raydl.runtime.connect`` (embedded Ray),
    ``raydl.data.prepare.prepare_data`` (Ray Data) and ``raydl.train.trainer.fit`` (Ray
    Train ``TorchTrainer``, DDP over gloo, data streamed with ``iter_torch_batches``).
    Epoch times come from the arrival times of the rows that ``fit`` hands to its
    ``on_epoch`` callback; nothing is added to raydl.
(b) plain: ``python -m torch.distributed.run --standalone --nproc_per_node=N`` (that is,
    ``torchrun``) on a small DDP script written to a temporary file. It reads the very
    train/val rows that raydl's preprocessing produced (exported to a ``.npz`` after (a)),
    builds the model with ``raydl.models.build_model`` under the same seed, uses AdamW
    with the same settings, the same per-worker batch, one thread per process (Ray Train
    gives each worker 1 CPU, so OMP_NUM_THREADS=1) and a ``DistributedSampler``.

(c) raydl again with ``train.deterministic: false``: the cost of reproducible training
    (ordered block dispatch, per-epoch seeds), printed as "deterministic / not".

Per epoch both do the same work: a train pass over the worker's shard, a val pass,
an all-reduce of the metric sums, and a checkpoint written by rank 0.

Steady-state samples/s = train rows x (epochs - 1) / (time of the last epoch's end -
time of the first epoch's end). Start-up (to the end of the first epoch: Ray start, data
preparation and the first epoch for raydl; process launch, process group, data load and
the first epoch for plain) and end-to-end seconds are reported separately. Plain reads
data that is already preprocessed, so its start-up holds no data preparation.

This is a benchmark, not a test: it asserts nothing about timings. Run it on an otherwise
idle machine; the load average before and after is recorded with the results.

    python benchmarks/train_overhead.py                      # defaults: 20000 rows, 4 epochs
    python benchmarks/train_overhead.py --rows 6000 --epochs 3
    python benchmarks/train_overhead.py --rows 30000 --epochs 8 --pairs 5   # + 4 pairs by turns
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run from a checkout without installing raydl
    sys.path.insert(0, str(REPO))

RESULT_PREFIX = "TRAIN_OVERHEAD_RESULT "

# The plain DDP script torchrun runs. It prints one line: RESULT_PREFIX + JSON (rank 0).
PLAIN_SCRIPT = r"""
import time

T_START = time.time()  # before the heavy imports: they are part of start-up

import json
import os
import sys
import tempfile

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import TensorDataset
from torch.utils.data.distributed import DistributedSampler

from raydl.models import build_model


def main() -> None:
    with open(sys.argv[1]) as f:
        cfg = json.load(f)
    torch.set_num_threads(cfg["threads"])
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    t_init = time.time()

    data = np.load(cfg["data"])
    x_train, y_train = torch.from_numpy(data["x_train"]), torch.from_numpy(data["y_train"])
    x_val, y_val = torch.from_numpy(data["x_val"]), torch.from_numpy(data["y_val"])
    t_data = time.time()

    torch.manual_seed(cfg["seed"])  # same seed on every rank, as in raydl's loop
    model = build_model(cfg["arch"], tuple(cfg["input_shape"]), cfg["num_outputs"],
                        cfg["params"])
    model = DistributedDataParallel(model)
    opt = cfg["optimizer"]
    optimizer = torch.optim.AdamW(model.parameters(), lr=opt["lr"], betas=tuple(opt["betas"]),
                                  weight_decay=opt["weight_decay"])
    loss_fn = nn.CrossEntropyLoss()
    batch = cfg["per_worker_batch"]
    train_sampler = DistributedSampler(TensorDataset(x_train, y_train), shuffle=True,
                                       seed=cfg["seed"])
    val_sampler = DistributedSampler(TensorDataset(x_val, y_val), shuffle=False)

    def run_epoch(x, y, sampler, train):
        model.train(train)
        order = torch.tensor(list(iter(sampler)), dtype=torch.long)
        loss_sum = hits = rows = 0.0
        with torch.set_grad_enabled(train):
            for i in range(0, len(order), batch):
                idx = order[i:i + batch]
                xb, yb = x[idx], y[idx]  # (B, *input_shape), (B,)
                out = model(xb)
                loss = loss_fn(out.float(), yb)
                if train:
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                n = len(yb)
                rows += n
                loss_sum += float(loss.detach()) * n
                hits += float((out.argmax(-1) == yb).sum())
        sums = torch.tensor([loss_sum, hits, rows], dtype=torch.float64)
        dist.all_reduce(sums)
        loss_sum, hits, rows = sums.tolist()
        return {"loss": loss_sum / rows, "accuracy": hits / rows, "rows": rows}

    epoch_ends, epochs = [], []
    ckpt_dir = tempfile.mkdtemp(prefix="plain-ckpt-") if rank == 0 else None
    for epoch in range(cfg["epochs"]):
        train_sampler.set_epoch(epoch)
        tr = run_epoch(x_train, y_train, train_sampler, True)
        va = run_epoch(x_val, y_val, val_sampler, False)
        if rank == 0:  # a checkpoint per epoch, as raydl writes one
            torch.save({"model": model.module.state_dict(),
                        "optimizer": optimizer.state_dict(), "epoch": epoch + 1},
                       os.path.join(ckpt_dir, "checkpoint.pt"))
        epoch_ends.append(time.time())
        epochs.append({"epoch": epoch + 1, "train_loss": tr["loss"],
                       "train_accuracy": tr["accuracy"], "train_rows_seen": tr["rows"],
                       "val_loss": va["loss"], "val_accuracy": va["accuracy"]})
    dist.barrier()
    if rank == 0:
        print("TRAIN_OVERHEAD_RESULT " + json.dumps({
            "t_start": T_START, "t_init": t_init, "t_data": t_data,
            "epoch_ends": epoch_ends, "epochs": epochs, "world": world,
            "torch_threads": torch.get_num_threads(),
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        }), flush=True)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
"""


# ------------------------------------------------------------------------ helpers
def steady_rate(train_rows: int, epoch_ends: list[float]) -> float | None:
    """Train rows per second over the epochs after the first."""
    if len(epoch_ends) < 2 or epoch_ends[-1] <= epoch_ends[0]:
        return None
    return train_rows * (len(epoch_ends) - 1) / (epoch_ends[-1] - epoch_ends[0])


def epoch_seconds(start: float, epoch_ends: list[float]) -> list[float]:
    """Duration of each epoch; the first is counted from ``start``."""
    edges = [start, *epoch_ends]
    return [round(b - a, 3) for a, b in zip(edges[:-1], edges[1:], strict=True)]


def git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def machine_facts() -> dict[str, Any]:
    import numpy
    import ray
    import torch

    import raydl

    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = None
    return {
        "cpu_count": os.cpu_count(),
        "cpus_usable": usable,
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "ray": ray.__version__,
        "numpy": numpy.__version__,
        "raydl": raydl.__version__,
        "git_commit": git_commit(),
        "ray_train_v2_enabled": os.environ.get("RAY_TRAIN_V2_ENABLED", "(default)"),
    }


def build_spec(args: argparse.Namespace):
    from raydl.spec import validate_spec

    params = (
        json.loads(args.params)
        if args.params
        else (
            {"channels": [16, 32], "hidden": 128, "dropout": 0.1}
            if args.model == "cnn"
            else {"hidden": [256, 128], "dropout": 0.1}
        )
    )
    source: dict[str, Any] = {"type": "builtin", "name": "fashion_mnist", "limit": args.rows}
    if args.data_path:
        source["path"] = args.data_path
    raw = {
        "name": "bench-train-overhead",
        "seed": args.seed,
        "data": {
            "source": source,
            "task": "classification",
            "label": "label",
            "split": {"method": "stratified", "val": 0.1, "test": 0.1},
        },
        "model": {"arch": args.model, "params": params},
        "train": {
            "workers": args.workers,
            "epochs": args.epochs,
            "batch_size": args.batch_size,
            "optimizer": {"type": "adamw", "lr": args.lr, "weight_decay": 1.0e-4},
            "scheduler": {"type": "none"},
            "checkpoint": {"metric": "val_accuracy", "mode": "max", "keep": 2},
        },
    }
    return validate_spec(raw)


def export_split(ds) -> tuple[Any, Any]:
    """A prepared Ray Dataset of ``{"x", "y"}`` rows as two numpy arrays."""
    import numpy as np

    xs, ys = [], []
    for b in ds.iter_batches(batch_size=4096, batch_format="numpy"):
        xs.append(np.asarray(b["x"], dtype=np.float32))
        ys.append(np.asarray(b["y"], dtype=np.int64))
    return np.concatenate(xs), np.concatenate(ys)


# --------------------------------------------------------------------------- (a)
def run_raydl(spec, workdir: Path, data_file: Path | None) -> dict[str, Any]:
    """Train through raydl; then export its preprocessed train/val splits for (b) to
    ``data_file`` (None: no export, a run after the first)."""
    import numpy as np

    from raydl.data.prepare import prepare_data
    from raydl.rundir import RunDir
    from raydl.runtime import connect
    from raydl.train.trainer import fit

    run = RunDir.create(workdir / "runs", spec.name)
    run.spec.write_text(spec.to_yaml())
    arrivals: list[float] = []
    rows: list[dict[str, Any]] = []

    def on_epoch(row: dict[str, Any]) -> None:
        arrivals.append(time.time())
        rows.append(dict(row))
        print(
            f"  raydl epoch {row.get('epoch')}: {arrivals[-1] - t0:7.1f} s since start, "
            f"val_accuracy {row.get('val_accuracy', float('nan')):.4f}",
            flush=True,
        )

    t0 = time.time()
    with connect(spec) as resources:
        t_init = time.time()
        prepared = prepare_data(spec)
        t_prep = time.time()
        result = fit(spec, prepared, run, on_epoch=on_epoch)
        t_fit = time.time()

        if data_file is not None:  # not timed: the same rows, preprocessed by raydl, for (b)
            x_train, y_train = export_split(prepared.datasets["train"])
            x_val, y_val = export_split(prepared.datasets["val"])
            np.savez(data_file, x_train=x_train, y_train=y_train, x_val=x_val, y_val=y_val)
        t_export = time.time()
    t_exit = time.time()  # ray.shutdown() done

    train_rows = int(prepared.report["split"]["rows"]["train"])
    if data_file is not None and len(x_train) != train_rows:
        print(f"  warning: exported {len(x_train)} train rows, the data report says {train_rows}", flush=True)
    pre = prepared.preprocessor
    return {
        "train_rows": train_rows,
        "val_rows": int(prepared.report["split"]["rows"]["val"]),
        "input_shape": list(pre.input_shape),
        "num_outputs": pre.num_outputs,
        "ray_resources": resources,
        "epochs_run": result.epochs_run,
        "metrics_jsonl": run.read_metrics_log(),  # what fit wrote to the run directory
        "callback_rows": rows,
        "timing": {
            "ray_init_s": t_init - t0,
            "data_prep_s": t_prep - t_init,
            "fit_to_first_epoch_s": (arrivals[0] - t_prep) if arrivals else None,
            "startup_s": (arrivals[0] - t0) if arrivals else None,
            "fit_s": t_fit - t_prep,
            "ray_shutdown_s": t_exit - t_export,
            "export_s_not_counted": t_export - t_fit,
            # end to end without the export that only serves the plain run
            "end_to_end_s": (t_fit - t0) + (t_exit - t_export),
            "epoch_s": epoch_seconds(t_prep, arrivals),
            "steady_samples_per_s": steady_rate(train_rows, arrivals),
        },
    }


# --------------------------------------------------------------------------- (b)
def run_plain(spec, facts: dict[str, Any], workdir: Path, data_file: Path, timeout: float) -> dict[str, Any]:
    """Train with plain torch DDP under torchrun on the exported arrays."""
    t = spec.train
    script = workdir / "plain_ddp.py"
    script.write_text(PLAIN_SCRIPT)
    cfg = {
        "data": str(data_file),
        "seed": spec.seed,
        "arch": spec.model.arch,
        "params": spec.model.params,
        "input_shape": facts["input_shape"],
        "num_outputs": facts["num_outputs"],
        "optimizer": {
            "lr": t.optimizer.lr,
            "betas": list(t.optimizer.betas),
            "weight_decay": t.optimizer.weight_decay,
        },
        "per_worker_batch": max(1, t.batch_size // t.workers),  # as raydl's loop splits it
        "epochs": t.epochs,
        "threads": max(1, int(t.cpus_per_worker)),
    }
    cfg_file = workdir / "plain_config.json"
    cfg_file.write_text(json.dumps(cfg))
    env = dict(os.environ)
    env["OMP_NUM_THREADS"] = str(cfg["threads"])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={t.workers}",
        str(script),
        str(cfg_file),
    ]

    t_launch = time.time()
    proc = subprocess.run(
        cmd, capture_output=True, text=True, env=env, timeout=timeout, check=False, cwd=workdir
    )
    t_done = time.time()
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(RESULT_PREFIX)]
    if proc.returncode != 0 or not lines:
        tail = "\n".join((proc.stdout + "\n" + proc.stderr).splitlines()[-40:])
        raise RuntimeError(f"plain torchrun run failed (exit {proc.returncode}):\n{tail}")
    out = json.loads(lines[-1][len(RESULT_PREFIX) :])
    ends = out["epoch_ends"]
    for e in out["epochs"]:
        print(f"  plain epoch {e['epoch']}: val_accuracy {e['val_accuracy']:.4f}", flush=True)
    return {
        "command": " ".join(cmd),
        "config": cfg,
        "world": out["world"],
        "torch_threads": out["torch_threads"],
        "omp_num_threads": out["omp_num_threads"],
        "epochs": out["epochs"],
        "timing": {
            "launch_to_process_start_s": out["t_start"] - t_launch,
            "init_s": out["t_init"] - t_launch,  # interpreter, imports, process group
            "data_load_s": out["t_data"] - out["t_init"],
            "first_epoch_s": ends[0] - out["t_data"],
            "startup_s": ends[0] - t_launch,
            "end_to_end_s": t_done - t_launch,
            "epoch_s": epoch_seconds(out["t_data"], ends),
            "steady_samples_per_s": steady_rate(facts["train_rows"], ends),
        },
    }


def more_pairs(
    pairs: int, arms: dict[str, Callable[[int], dict[str, Any]]], rest_s: float
) -> Iterator[tuple[str, dict[str, Any]]]:
    """Pairs 2..``pairs`` of raydl and one other program (``arms``: name → run, given the
    pair's number), run by turns: the other goes first in even pairs. On a host whose
    speed drifts between runs, one pair says little, the median of several more. Yields
    ``(order, {arm: result})``; ``rest_s`` seconds before each run let the last one's
    processes exit."""
    other = next(a for a in arms if a != "raydl")
    for k in range(2, pairs + 1):
        other_first = k % 2 == 0
        order = f"{other} first" if other_first else "raydl first"
        print(f"(pair {k} of {pairs}, {order})", flush=True)
        runs: dict[str, Any] = {}
        for arm in (other, "raydl") if other_first else ("raydl", other):
            time.sleep(rest_s)
            runs[arm] = arms[arm](k)
        yield order, runs


def pair_of(raydl: dict[str, Any], plain: dict[str, Any], order: str) -> dict[str, Any]:
    """One raydl run and one torchrun run, back to back: their steady rates and ratio."""
    a, b = raydl["timing"]["steady_samples_per_s"], plain["timing"]["steady_samples_per_s"]
    return {"order": order, "raydl": a, "plain": b, "ratio": a / b if a and b else None}


# ------------------------------------------------------------------------ report
def show(results: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    r, p = results["raydl"]["timing"], results["plain"]["timing"]
    n = results["raydl_nondeterministic"]["timing"]

    def fmt(v: Any, digits: int = 1) -> str:
        return "-" if v is None else f"{v:,.{digits}f}"

    def ratio(a: Any, b: Any) -> str:
        return "-" if a is None or not b else f"{a / b:.3f}"

    c = results["config"]
    table = Table(
        title=f"raydl vs plain torchrun DDP: Fashion-MNIST {c['model']}, "
        f"{results['raydl']['train_rows']:,} train rows, {c['epochs']} epochs, "
        f"{c['workers']}x{c['batch_size'] // c['workers']} batch"
    )
    table.add_column("measure", no_wrap=True)
    table.add_column("raydl (Ray Train)", justify="right")
    table.add_column("plain (torchrun)", justify="right")
    table.add_column("raydl / plain", justify="right")
    table.add_column("raydl, not deterministic", justify="right")
    table.add_column("deterministic / not", justify="right")

    def row(name: str, key: str, plain_key: str | None = None, digits: int = 1) -> None:
        pv = p.get(plain_key or key)
        ours, loose = fmt(r[key], digits), fmt(n[key], digits)
        table.add_row(name, ours, fmt(pv, digits), ratio(r[key], pv), loose, ratio(r[key], n[key]))

    row("steady samples/s (epochs 2+)", "steady_samples_per_s")
    row("start-up s (to end of epoch 1)", "startup_s", digits=2)
    table.add_row("  of which: ray.init / proc+dist init", fmt(r["ray_init_s"], 2), fmt(p["init_s"], 2), "")
    table.add_row("  of which: data prep / npz load", fmt(r["data_prep_s"], 2), fmt(p["data_load_s"], 2), "")
    table.add_row(
        "  of which: to end of epoch 1", fmt(r["fit_to_first_epoch_s"], 2), fmt(p["first_epoch_s"], 2), ""
    )
    row("end-to-end s", "end_to_end_s", digits=2)
    table.add_row(
        "epoch s",
        ", ".join(f"{v:.1f}" for v in r["epoch_s"]),
        ", ".join(f"{v:.1f}" for v in p["epoch_s"]),
        "",
        ", ".join(f"{v:.1f}" for v in n["epoch_s"]),
    )
    rv = results["raydl"]["callback_rows"]
    pv = results["plain"]["epochs"]
    nv = results["raydl_nondeterministic"]["callback_rows"]
    table.add_row(
        "final val accuracy",
        fmt(rv[-1].get("val_accuracy") if rv else None, 4),
        fmt(pv[-1]["val_accuracy"] if pv else None, 4),
        "",
        fmt(nv[-1].get("val_accuracy") if nv else None, 4),
    )
    console = Console(width=None if sys.stdout.isatty() else 140)  # a log: one line a row
    console.print(table)
    if len(results["pairs"]) > 1:
        pairs = Table(title="steady samples/s, pair by pair (deterministic raydl against torchrun)")
        for col in ("pair", "order", "raydl", "plain", "raydl / plain"):
            pairs.add_column(col, justify="left" if col in ("pair", "order") else "right")
        for k, q in enumerate(results["pairs"], 1):
            pairs.add_row(str(k), q["order"], fmt(q["raydl"]), fmt(q["plain"]), ratio(q["raydl"], q["plain"]))
        median = results["ratio_steady_median_of_pairs"]
        pairs.add_row("median", "", "", "", "-" if median is None else f"{median:.3f}")
        console.print(pairs)
    m = results["machine"]
    print(
        f"{m['cpu_count']} CPUs, torch {m['torch']}, ray {m['ray']}; load average "
        f"{results['load_average_before']} before, {results['load_average_after']} after"
    )
    # the load after is mostly this benchmark's own (its programs keep every core busy)
    if results["load_average_before"][0] > 0.5 * (m["cpu_count"] or 1):
        print(
            "warning: the machine was busy with other work before this run (see the load "
            "average); these timings are not reliable, rerun it on an idle machine"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="raydl's Ray Train DDP vs plain torchrun DDP: steady-state samples/s, "
        "start-up and end-to-end time, same model, data and batch size."
    )
    parser.add_argument(
        "--rows", type=int, default=20000, help="Fashion-MNIST rows used (before the train/val/test split)"
    )
    parser.add_argument("--epochs", type=int, default=4, help="epochs (at least 2)")
    parser.add_argument(
        "--batch-size", type=int, default=128, help="global batch size, split evenly over the workers"
    )
    parser.add_argument("--model", choices=["cnn", "mlp"], default="cnn")
    parser.add_argument(
        "--params",
        default=None,
        help="model params as JSON (default cnn: channels [16, 32], hidden 128,"
        " dropout 0.1; mlp: hidden [256, 128], dropout 0.1)",
    )
    parser.add_argument("--workers", type=int, default=2, help="DDP workers in both runs")
    parser.add_argument("--lr", type=float, default=3.0e-3, help="AdamW learning rate")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--data-path",
        default=None,
        help="folder of the Fashion-MNIST IDX files (default: raydl's, /usr/share/datasets/fashion-mnist)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path(__file__).resolve().parent / "results" / "train_overhead.json",
        help="where the JSON results go (default: %(default)s)",
    )
    parser.add_argument(
        "--pairs",
        type=int,
        default=1,
        help="raydl/torchrun pairs run by turns (the first is (a) and (b)); the median ratio is printed",
    )
    parser.add_argument(
        "--plain-timeout", type=float, default=3600, help="seconds before the torchrun run is abandoned"
    )
    args = parser.parse_args(argv)
    if args.epochs < 2:
        parser.error("--epochs must be at least 2: steady state is measured after epoch 1")
    if args.pairs < 1:
        parser.error("--pairs must be at least 1")
    if args.batch_size < args.workers:
        parser.error("--batch-size must be at least --workers")

    spec = build_spec(args)
    facts = machine_facts()
    results: dict[str, Any] = {
        "benchmark": "train_overhead",
        "created": dt.datetime.now().isoformat(timespec="seconds"),
        "command": [sys.executable, *sys.argv],
        "config": {
            "rows": args.rows,
            "epochs": args.epochs,
            "batch_size": args.batch_size,
            "workers": args.workers,
            "model": args.model,
            "params": spec.model.params,
            "lr": args.lr,
            "seed": args.seed,
        },
        "spec": spec.model_dump(mode="json"),
        "machine": facts,
        "load_average_before": [round(v, 2) for v in os.getloadavg()],
    }
    workdir = Path(tempfile.mkdtemp(prefix="raydl-bench-"))
    try:
        data_file = workdir / "prepared.npz"
        print(f"(a) raydl: {args.workers} Ray Train workers, embedded Ray", flush=True)
        results["raydl"] = run_raydl(spec, workdir, data_file)
        time.sleep(2)  # let Ray's processes exit before the plain run takes the CPUs
        print(f"(b) plain: torchrun --standalone --nproc_per_node={args.workers}", flush=True)
        retried: list[str] = []
        results["plain_retried"] = retried

        def plain() -> dict[str, Any]:
            try:
                return run_plain(spec, results["raydl"], workdir, data_file, args.plain_timeout)
            except RuntimeError as e:
                # gloo aborts a torchrun process now and then (SIGABRT); one retry, said in
                # the results, keeps the rest of the run
                print(f"  torchrun failed, run again: {str(e).splitlines()[0]}", flush=True)
                retried.append(str(e)[-2000:])
                time.sleep(2)
                return run_plain(spec, results["raydl"], workdir, data_file, args.plain_timeout)

        results["plain"] = plain()
        time.sleep(2)
        # (c) the cost of reproducibility: the same run with Ray Data free to hand blocks
        # to whichever worker asks first, and no per-epoch seeding
        print("(c) raydl with train.deterministic: false", flush=True)
        loose = spec.model_copy(update={"train": spec.train.model_copy(update={"deterministic": False})})
        results["raydl_nondeterministic"] = run_raydl(loose, workdir / "c", None)
        results["pairs"] = [pair_of(results["raydl"], results["plain"], "raydl first")]
        # the later pairs run on the first's exported rows
        arms = {"raydl": lambda k: run_raydl(spec, workdir / f"pair{k}", None), "plain": lambda k: plain()}
        for order, runs in more_pairs(args.pairs, arms, rest_s=2):
            results["pairs"].append(pair_of(runs["raydl"], runs["plain"], order))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    results["load_average_after"] = [round(v, 2) for v in os.getloadavg()]
    r, p = results["raydl"]["timing"], results["plain"]["timing"]
    n = results["raydl_nondeterministic"]["timing"]
    results["ratio_steady_samples_per_s"] = (
        r["steady_samples_per_s"] / p["steady_samples_per_s"]
        if r["steady_samples_per_s"] and p["steady_samples_per_s"]
        else None
    )
    results["ratio_deterministic_to_not"] = (
        r["steady_samples_per_s"] / n["steady_samples_per_s"]
        if r["steady_samples_per_s"] and n["steady_samples_per_s"]
        else None
    )
    ratios = [q["ratio"] for q in results["pairs"] if q["ratio"] is not None]
    results["ratio_steady_median_of_pairs"] = statistics.median(ratios) if ratios else None
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, default=str) + "\n")
    show(results)
    print(f"results: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
