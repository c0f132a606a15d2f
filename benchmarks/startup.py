#!/usr/bin/env python
"""The fixed cost of a run: each phase of ``raydl run`` against a bare Ray Train script
and a plain PyTorch script, on the same model and Fashion-MNIST rows, in one run.

Five programs, each in a fresh interpreter so that imports are counted:

(a) raydl: the code path of ``raydl run`` (``import raydl.cli``, ``load_spec``,
    ``raydl.cli.run_spec``), with a ``Display`` that timestamps each stage: imports and
    spec, ``ray.init`` (``connect``, with torch and torchmetrics importing alongside it
    and the rest of the pipeline's imports after it), data preparation (read, clean,
    split, fit and apply the preprocessing, cache), the start of training up to the
    loop's first line (the worker group, or nothing when one worker trains in the
    driver), the first batch, the epochs, evaluation and the report; Ray shuts down after
    the report, in "exit". The loop itself reports when it started and got its first
    batch (``loop_started_at``/``first_batch_at``).
(b) bare Ray Train: ``ray.init`` + ``ray.data.from_arrow`` of the rows parsed with numpy
    + ``TorchTrainer`` with a hand-written loop (``prepare_model``, ``iter_torch_batches``,
    a ``ray.train.report`` with a rank-0 checkpoint per epoch) — what a Ray user writes
    without raydl. It has no cleaning, no stratified split, no fitted scaling, no
    evaluation of a test split and no report.
(c) plain PyTorch: ``torchrun`` DDP with the same number of processes (``--workers``
    > 1), or one process (``--workers 1``), over tensors parsed with numpy: the floor.
(d) the data stage's work alone: the same rows read, hashed (raydl's ``row_hashes``),
    split by class, the scaling fitted (per-element sums) and applied, the train split
    put in its seeded order, in numpy in one process: what data preparation would cost
    if it cost only its work. The table's data preparation is printed against it.
(e) the same work written plainly in Ray Data, as a Ray user would without raydl: the
    rows in a block a core (``from_arrow``), hashed in a materialized pass, the split
    plan from the (label, hash) keys in the driver, the per-element sums from one
    ``map_batches`` pass, val scaled and train scaled and ``random_shuffle(seed=)``'d,
    both materialized. It runs in a fresh Ray started as raydl's embedded one (CPUs,
    object store, no progress bars), after importing torch and torchmetrics as raydl's
    driver has when its data stage starts; then once more in the same process (warm).
    raydl's data preparation minus this is the part that is raydl's own: the rest is
    what Ray Data costs anyone.

The same rows (the first ``--rows`` of Fashion-MNIST), the same 80/10/10 split sizes, the
same model (``raydl.models.build_model``), optimizer (AdamW), batch size and epochs. The
table prints each phase in seconds and raydl's ratio to each alternative; the results go
to ``benchmarks/results/startup.json`` with the machine's load average before and after.

This is a benchmark, not a test: it asserts nothing. Run it on an otherwise idle machine.

    python benchmarks/startup.py                          # 30000 rows, 3 epochs, 2 workers
    python benchmarks/startup.py --workers 1              # one worker: raydl trains in the driver
    python benchmarks/startup.py --pairs 5                # + 4 raydl/bare pairs by turns: the median
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # train_overhead's helpers
from train_overhead import PLAIN_SCRIPT, REPO, RESULT_PREFIX, machine_facts, more_pairs  # noqa: E402

FASHION = "/usr/share/datasets/fashion-mnist"
EXIT = "exit (with ray.shutdown)"

# (a) raydl's `raydl run` path with a Display that writes down when each stage begins.
RAYDL_SCRIPT = r"""
import time

T_START = time.time()

import contextlib
import json
import sys

import raydl.cli  # what the `raydl` command imports
from raydl.checks import load_spec
from raydl.progress import Display

T_IMPORTS = time.time()
spec = load_spec(sys.argv[1], json.loads(sys.argv[2]))
T_SPEC = time.time()
marks, epochs = {}, []


class Timed(Display):
    def stage(self, name, detail):
        marks.setdefault(name, time.time())

    @contextlib.contextmanager
    def epochs(self, total):
        yield lambda row: epochs.append({"at": time.time(), **row})

    def done(self, path):
        marks["done"] = time.time()


result = raydl.cli.run_spec(spec, runs_root=sys.argv[3], display=Timed(quiet=True))
print("RESULT " + json.dumps({
    "t_start": T_START, "t_imports": T_IMPORTS, "t_spec": T_SPEC, "marks": marks,
    "epochs": epochs, "t_end": time.time(), "test_accuracy": result.metrics.get("accuracy"),
}, default=str), flush=True)
"""

# (b) a bare Ray Train script: what a Ray user writes for the same training.
BARE_SCRIPT = r"""
import time

T_START = time.time()

import json
import os
import sys
import tempfile

import numpy as np
import pyarrow as pa
import ray
import ray.train
import torch
from ray.data.extensions import ArrowTensorArray
from ray.train import Checkpoint, RunConfig, ScalingConfig
from ray.train.torch import TorchTrainer, prepare_model

T_IMPORTS = time.time()
cfg = json.loads(open(sys.argv[1]).read())


def loop(c):
    from raydl.models import build_model

    t_loop = time.time()
    torch.set_num_threads(1)
    torch.manual_seed(c["seed"])
    model = prepare_model(build_model(c["arch"], (1, 28, 28), 10, c["params"]))
    optimizer = torch.optim.AdamW(model.parameters(), lr=c["lr"], weight_decay=1e-4)
    loss_fn = torch.nn.CrossEntropyLoss()
    shards = {k: ray.train.get_dataset_shard(k) for k in ("train", "val")}
    first = None
    rank = ray.train.get_context().get_world_rank()
    for epoch in range(c["epochs"]):
        model.train()
        for b in shards["train"].iter_torch_batches(batch_size=c["batch"]):
            if first is None:
                first = time.time()
            loss = loss_fn(model(b["x"]), b["y"])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        model.eval()
        hits = rows = 0
        with torch.no_grad():
            for b in shards["val"].iter_torch_batches(batch_size=c["batch"]):
                hits += int((model(b["x"]).argmax(-1) == b["y"]).sum())
                rows += len(b["y"])
        with tempfile.TemporaryDirectory() as d:
            checkpoint = None
            if rank == 0:
                torch.save(model.state_dict(), os.path.join(d, "model.pt"))
                checkpoint = Checkpoint.from_directory(d)
            row = {"epoch": epoch + 1, "at": time.time(), "val_accuracy": hits / max(rows, 1)}
            if epoch == 0:
                row.update(loop_started_at=t_loop, first_batch_at=first)
            if rank == 0:
                with open(c["log"], "a") as f:
                    f.write(json.dumps(row) + "\n")
            ray.train.report(row, checkpoint=checkpoint)


ray.init(num_cpus=cfg["num_cpus"], include_dashboard=False, log_to_driver=False)
T_INIT = time.time()
data = np.load(cfg["data"])
datasets = {
    k: ray.data.from_arrow(pa.table({
        "x": ArrowTensorArray.from_numpy(data[f"x_{k}"]), "y": data[f"y_{k}"],
    }))
    for k in ("train", "val")
}
T_DATA = time.time()
trainer = TorchTrainer(
    loop,
    train_loop_config=cfg,
    scaling_config=ScalingConfig(num_workers=cfg["workers"], resources_per_worker={"CPU": 1}),
    run_config=RunConfig(storage_path=cfg["storage"], name="bare"),
    datasets=datasets,
)
trainer.fit()
T_FIT = time.time()
ray.shutdown()
print("RESULT " + json.dumps({
    "t_start": T_START, "t_imports": T_IMPORTS, "t_init": T_INIT, "t_data": T_DATA,
    "t_fit": T_FIT, "t_end": time.time(),
}), flush=True)
"""


# (d) the data stage's work with no engine around it: what "data preparation" would cost
# if it cost only its numpy, in one process (imports not counted).
WORK_SCRIPT = r"""
import time

T_START = time.time()

import json
import sys
from pathlib import Path

import numpy as np

from raydl.data.sources import read_idx
from raydl.data.split import _uniform, row_hashes

T_IMPORTS = time.time()
rows, root, seed = int(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
marks = {}
x = np.concatenate([read_idx(root / f"{p}-images-idx3-ubyte.gz") for p in ("train", "t10k")])[:rows, None]
y = np.concatenate([read_idx(root / f"{p}-labels-idx1-ubyte.gz") for p in ("train", "t10k")])[:rows]
marks["read"] = time.time()
h = row_hashes({"image": x, "label": y.astype(np.int64)})  # raydl's content hash
duplicates = rows - len(np.unique(h))
marks["hash and duplicates"] = time.time()
u = _uniform(h, seed)
split = np.zeros(rows, np.int8)  # 0 train, 1 val, 2 test: each class cut at its own quantiles
for c in np.unique(y):
    m = y == c
    test_cut, val_cut = np.quantile(u[m], [0.1, 0.2])
    split[m] = np.where(u[m] < test_cut, 2, np.where(u[m] < val_cut, 1, 0))
marks["stratified split"] = time.time()
flat = x.reshape(rows, -1)
train = flat[split == 0].astype(np.float64)
mean = train.sum(axis=0) / len(train)  # per-element sums and sums of squares, as fit_tensor's
std = np.sqrt(np.maximum((train**2).sum(axis=0) / len(train) - mean**2, 0.0))
std = np.where(std > 1e-12, std, 1.0)
marks["fit the scaling"] = time.time()
scaled = {k: ((flat[split == k] - mean) / std).astype(np.float32) for k in (0, 1, 2)}
train_x = scaled[0][np.argsort(_uniform(h[split == 0], seed + 7919), kind="stable")]
marks["scale, seeded order"] = time.time()
print("RESULT " + json.dumps({
    "t_start": T_START, "t_imports": T_IMPORTS, "marks": marks, "duplicates": int(duplicates),
}), flush=True)
"""


# (e) the same work written plainly in Ray Data: what a Ray user's own data stage costs,
# cold, in a fresh Ray (started as raydl starts its embedded one), with the driver's
# imports done as raydl's are when its data stage starts; then once more, warm.
RAY_DATA_SCRIPT = r"""
import time

T_START = time.time()

import json
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import ray
from ray.data.extensions import ArrowTensorArray

cfg = json.loads(sys.argv[1])
ray.init(
    address="local", num_cpus=cfg["num_cpus"], object_store_memory=cfg["object_store"],
    include_dashboard=False, log_to_driver=False,
)
T_INIT = time.time()
ctx = ray.data.DataContext.get_current()  # quiet, as raydl's (no progress bars)
ctx.enable_progress_bars = False
ctx.print_on_execution_start = False
import torch, torchmetrics  # noqa: E401,F401  raydl's driver holds them when its data stage starts

from raydl.data.sources import read_idx
from raydl.data.split import _uniform, row_hashes

T_IMPORTS = time.time()
rows, root, seed = cfg["rows"], Path(cfg["root"]), cfg["seed"]


def hashed(batch):
    batch["h"] = row_hashes({"image": batch["image"], "label": batch["label"]}).view(np.int64)
    return batch


def prepare():
    marks, t0 = {}, time.time()
    x = np.concatenate([read_idx(root / f"{p}-images-idx3-ubyte.gz") for p in ("train", "t10k")])[:rows, None]
    y = np.concatenate([read_idx(root / f"{p}-labels-idx1-ubyte.gz") for p in ("train", "t10k")])[:rows]
    y = y.astype(np.int64)
    parts = np.array_split(np.arange(rows), cfg["num_cpus"] // 2)  # a block a core
    ds = ray.data.from_arrow(
        [pa.table({"image": ArrowTensorArray.from_numpy(x[i]), "label": y[i]}) for i in parts]
    )
    rows_h = ds.map_batches(hashed, batch_format="numpy").materialize()
    marks["read, hash (materialized)"] = time.time()
    keys = rows_h.select_columns(["label", "h"]).to_pandas()
    u = _uniform(keys["h"].to_numpy().view(np.uint64), seed)
    duplicates = rows - keys["h"].nunique()
    label = keys["label"].to_numpy()
    cuts = np.zeros((label.max() + 1, 2))  # each class cut at its own quantiles
    for c in np.unique(label):
        cuts[c] = np.quantile(u[label == c], [0.1, 0.2])
    marks["stratified split plan"] = time.time()

    def keep(k):
        def rows_of(batch):
            u, (lo, hi) = _uniform(batch["h"].view(np.uint64), seed), cuts[batch["label"]].T
            s = np.where(u < lo, 2, np.where(u < hi, 1, 0))
            return {c: v[s == k] for c, v in batch.items()}
        return rows_of

    train, val = (rows_h.map_batches(keep(k), batch_format="numpy") for k in (0, 1))

    def sums(batch):
        flat = batch["image"].reshape(len(batch["image"]), -1).astype(np.float64)
        return {"s": flat.sum(0)[None], "q": (flat**2).sum(0)[None], "n": np.array([len(flat)])}

    got = train.map_batches(sums, batch_format="numpy", batch_size=None).take_all()
    n = sum(int(g["n"]) for g in got)
    mean = sum(g["s"] for g in got) / n
    std = np.sqrt(np.maximum(sum(g["q"] for g in got) / n - mean**2, 0.0))
    std = np.where(std > 1e-12, std, 1.0)
    marks["fit the scaling"] = time.time()

    def scale(batch):
        flat = batch["image"].reshape(len(batch["image"]), -1)
        x = ((flat - mean) / std).astype(np.float32).reshape(batch["image"].shape)
        return {"x": x, "y": batch["label"]}

    val_ds = val.map_batches(scale, batch_format="numpy").materialize()
    train_ds = train.map_batches(scale, batch_format="numpy").random_shuffle(seed=seed).materialize()
    marks["scale; val, train in seeded order (materialized)"] = time.time()
    return {
        "marks": marks, "t0": t0, "duplicates": int(duplicates),
        "rows": {"train": train_ds.count(), "val": val_ds.count()},
    }


cold = prepare()
warm = prepare()
print("RESULT " + json.dumps({
    "t_start": T_START, "t_init": T_INIT, "t_imports": T_IMPORTS, "cold": cold, "warm": warm,
}), flush=True)
ray.shutdown()
"""


def load_rows(rows: int, seed: int, path: str) -> dict[str, np.ndarray]:
    """The first ``rows`` Fashion-MNIST images as raydl's builtin reads them (train then
    t10k), scaled to [0, 1], cut 80/10/10 by a seeded permutation (the plain scripts'
    work: no cleaning, no stratification, no fitted scaling)."""
    from raydl.data.sources import read_idx

    root = Path(path)
    x = np.concatenate([read_idx(root / f"{p}-images-idx3-ubyte.gz") for p in ("train", "t10k")])
    y = np.concatenate([read_idx(root / f"{p}-labels-idx1-ubyte.gz") for p in ("train", "t10k")])
    x = (x[:rows, None].astype(np.float32) / 255.0).copy()
    y = y[:rows].astype(np.int64)
    order = np.random.default_rng(seed).permutation(rows)
    cut1, cut2 = int(rows * 0.8), int(rows * 0.9)
    parts = {"train": order[:cut1], "val": order[cut1:cut2]}
    return {f"{a}_{k}": v[idx] for k, idx in parts.items() for a, v in (("x", x), ("y", y))}


def _run(cmd: list[str], env: dict[str, str], timeout: float, cwd: Path) -> tuple[dict[str, Any], float]:
    """Run one program; its RESULT line, with the launch time and the seconds to its exit
    (``t_exit``) added."""
    t_launch = time.time()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout, check=False, cwd=cwd)
    t_exit = time.time()
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(("RESULT ", RESULT_PREFIX))]
    if proc.returncode != 0 or not lines:
        tail = "\n".join((proc.stdout + "\n" + proc.stderr).splitlines()[-40:])
        raise RuntimeError(f"{cmd[1:3]} failed (exit {proc.returncode}):\n{tail}")
    out = json.loads(lines[-1].split(" ", 1)[1])
    out["t_exit"] = t_exit
    return out, t_launch


def child_env(threads: int | None = None) -> dict[str, str]:
    """The environment of a benchmarked program: offline, this checkout importable."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", WANDB_MODE="offline")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    if threads is not None:
        env["OMP_NUM_THREADS"] = str(threads)
    return env


def run_raydl(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    spec = REPO / "jobs" / "fashion_mnist_cnn.yaml"
    overrides = [
        f"data.source.limit={args.rows}",
        f"train.workers={args.workers}",
        f"train.epochs={args.epochs}",
        f"train.batch_size={args.batch_size}",
        "train.scheduler.type=none",
    ]
    script = work / "raydl_run.py"
    script.write_text(RAYDL_SCRIPT)
    out, t_launch = _run(
        [sys.executable, str(script), str(spec), json.dumps(overrides), str(work / "runs")],
        child_env(),
        args.timeout,
        work,
    )
    m, ep = out["marks"], out["epochs"]
    first = ep[0]
    phases = {
        "interpreter start": out["t_start"] - t_launch,
        "imports": out["t_imports"] - out["t_start"],
        "spec": out["t_spec"] - out["t_imports"],
        "ray.init": m["data"] - out["t_spec"],
        "data preparation": m["train"] - m["data"],
        "to the loop (worker group)": first["loop_started_at"] - m["train"],
        "loop to first batch": first["first_batch_at"] - first["loop_started_at"],
        "first epoch (rest)": first["at"] - first["first_batch_at"],
        "later epochs": ep[-1]["at"] - first["at"],
        "evaluation": m["report"] - m["evaluate"],
        "report": m["done"] - m["report"],
    }
    phases["epochs to evaluation"] = m["evaluate"] - ep[-1]["at"]  # teardown of the trainer
    phases[EXIT] = out["t_exit"] - m["done"]  # run_spec shuts the embedded Ray down
    return {
        "phases": phases,
        "to_end_of_epoch_1": first["at"] - t_launch,
        "end_to_end": out["t_exit"] - t_launch,
        "later_epoch_s": [b["at"] - a["at"] for a, b in zip(ep, ep[1:], strict=False)],
        "data_wait_share": [e.get("data_wait_share") for e in ep],
        "val_accuracy": ep[-1].get("val_accuracy"),
        "test_accuracy": out.get("test_accuracy"),
    }


def run_bare(args: argparse.Namespace, work: Path, data_file: Path, params: dict[str, Any]) -> dict[str, Any]:
    # a run of its own each time (--pairs): Ray Train would restore a run of the same name
    # from its storage, and the epochs' log would hold two runs
    k = len(list(work.glob("bare-*.jsonl")))
    script, log = work / "bare_ray_train.py", work / f"bare-{k}.jsonl"
    script.write_text(BARE_SCRIPT)
    cfg = {
        "data": str(data_file),
        "log": str(log),
        "storage": str(work / f"bare-{k}"),
        "workers": args.workers,
        "num_cpus": 2 * (os.cpu_count() or 1),  # as raydl's embedded Ray
        "epochs": args.epochs,
        "batch": max(1, args.batch_size // args.workers),
        "arch": "cnn",
        "params": params,
        "lr": 3.0e-3,
        "seed": args.seed,
    }
    (work / "bare.json").write_text(json.dumps(cfg))
    cmd = [sys.executable, str(script), str(work / "bare.json")]
    out, t_launch = _run(cmd, child_env(), args.timeout, work)
    ep = [json.loads(line) for line in log.read_text().splitlines()]
    first = ep[0]
    phases = {
        "interpreter start": out["t_start"] - t_launch,
        "imports": out["t_imports"] - out["t_start"],
        "ray.init": out["t_init"] - out["t_imports"],
        "data preparation": out["t_data"] - out["t_init"],
        "to the loop (worker group)": first["loop_started_at"] - out["t_data"],
        "loop to first batch": first["first_batch_at"] - first["loop_started_at"],
        "first epoch (rest)": first["at"] - first["first_batch_at"],
        "later epochs": ep[-1]["at"] - first["at"],
        "epochs to evaluation": out["t_fit"] - ep[-1]["at"],
        EXIT: out["t_exit"] - out["t_fit"],
    }
    return {
        "phases": phases,
        "to_end_of_epoch_1": first["at"] - t_launch,
        "end_to_end": out["t_exit"] - t_launch,
        "later_epoch_s": [b["at"] - a["at"] for a, b in zip(ep, ep[1:], strict=False)],
        "val_accuracy": ep[-1]["val_accuracy"],
    }


def run_plain(
    args: argparse.Namespace, work: Path, data_file: Path, params: dict[str, Any]
) -> dict[str, Any]:
    script = work / "plain_ddp.py"
    script.write_text(PLAIN_SCRIPT)
    cfg = {
        "data": str(data_file),
        "seed": args.seed,
        "arch": "cnn",
        "params": params,
        "input_shape": [1, 28, 28],
        "num_outputs": 10,
        "optimizer": {"lr": 3.0e-3, "betas": [0.9, 0.999], "weight_decay": 1.0e-4},
        "per_worker_batch": max(1, args.batch_size // args.workers),
        "epochs": args.epochs,
        "threads": 1,
    }
    (work / "plain.json").write_text(json.dumps(cfg))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={args.workers}"]
    out, t_launch = _run([*cmd, str(script), str(work / "plain.json")], child_env(1), args.timeout, work)
    ends = out["epoch_ends"]
    phases = {
        "interpreter start": out["t_start"] - t_launch,
        "imports": out["t_init"] - out["t_start"],  # with torch.distributed's process group
        "data preparation": out["t_data"] - out["t_init"],
        "first epoch (rest)": ends[0] - out["t_data"],
        "later epochs": ends[-1] - ends[0],
        EXIT: out["t_exit"] - ends[-1],
    }
    return {
        "phases": phases,
        "to_end_of_epoch_1": ends[0] - t_launch,
        "end_to_end": out["t_exit"] - t_launch,
        "later_epoch_s": [b - a for a, b in zip(ends, ends[1:], strict=False)],
        "val_accuracy": out["epochs"][-1]["val_accuracy"],
    }


def run_work(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """The data stage's work in numpy, step by step (seconds), and in all."""
    script = work / "data_work.py"
    script.write_text(WORK_SCRIPT)
    cmd = [sys.executable, str(script), str(args.rows), args.data_path, str(args.seed)]
    out, _ = _run(cmd, child_env(), args.timeout, work)
    steps, before = {}, out["t_imports"]
    for name, at in out["marks"].items():
        steps[name], before = at - before, at
    return {"steps": steps, "total": sum(steps.values())}


def run_ray_data(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """The data stage's work written plainly in Ray Data: cold and warm (seconds)."""
    from raydl.env import object_store_bytes
    from raydl.runtime import default_num_cpus

    script = work / "ray_data_work.py"
    script.write_text(RAY_DATA_SCRIPT)
    cfg = {
        "rows": args.rows,
        "root": args.data_path,
        "seed": args.seed,
        "num_cpus": default_num_cpus(),
        "object_store": object_store_bytes(),
    }
    out, _ = _run([sys.executable, str(script), json.dumps(cfg)], child_env(), args.timeout, work)
    result: dict[str, Any] = {"ray.init": out["t_init"] - out["t_start"]}
    for run in ("cold", "warm"):
        steps, before = {}, out[run]["t0"]
        for name, at in out[run]["marks"].items():
            steps[name], before = at - before, at
        result[run] = {"steps": steps, "total": sum(steps.values()), "rows": out[run]["rows"]}
    return result


def pair_of(raydl: dict[str, Any], bare: dict[str, Any], order: str) -> dict[str, Any]:
    """One raydl run and one bare Ray Train run, back to back: what raydl adds, end to end
    and in the phases where the two differ most."""
    pa, pb = raydl["phases"], bare["phases"]
    return {
        "order": order,
        "raydl": raydl["end_to_end"],
        "bare": bare["end_to_end"],
        "adds": raydl["end_to_end"] - bare["end_to_end"],
        "data_preparation": [pa["data preparation"], pb["data preparation"]],
        "to_the_loop": [pa["to the loop (worker group)"], pb["to the loop (worker group)"]],
    }


PHASES = [
    "interpreter start",
    "imports",
    "spec",
    "ray.init",
    "data preparation",
    "to the loop (worker group)",
    "loop to first batch",
    "first epoch (rest)",
    "later epochs",
    "epochs to evaluation",
    "evaluation",
    "report",
    EXIT,
]


def show(results: dict[str, Any]) -> None:
    a, b, c = results["raydl"], results["bare_ray_train"], results["plain"]

    def f(v: Any) -> str:
        return "-" if v is None else f"{v:,.2f}"

    def ratio(x: Any, y: Any) -> str:
        return "-" if x is None or not y else f"{x / y:.2f}"

    cfg = results["config"]
    print(
        f"\nThe fixed cost of a run: Fashion-MNIST cnn, {cfg['rows']:,} rows, {cfg['epochs']} epochs, "
        f"{cfg['workers']} worker(s), batch {cfg['batch_size']} (seconds)\n"
    )
    cols = ("raydl run", "bare Ray Train", "plain torch", "raydl/bare", "raydl/plain")
    head = f"{'phase':32} " + " ".join(f"{c:>{w}}" for c, w in zip(cols, (10, 15, 12, 11, 12), strict=True))
    print(head)
    print("-" * len(head))
    for p in PHASES:
        va, vb, vc = a["phases"].get(p), b["phases"].get(p), c["phases"].get(p)
        if va is None and vb is None and vc is None:
            continue
        print(f"{p:32} {f(va):>10} {f(vb):>15} {f(vc):>12} {'':>11} {'':>12}")
    print("-" * len(head))
    for name, key in (("start to the end of epoch 1", "to_end_of_epoch_1"), ("end to end", "end_to_end")):
        va, vb, vc = a[key], b[key], c[key]
        print(f"{name:32} {f(va):>10} {f(vb):>15} {f(vc):>12} {ratio(va, vb):>11} {ratio(va, vc):>12}")
    steady = {
        k: float(np.mean(r["later_epoch_s"])) if r["later_epoch_s"] else None
        for k, r in (("a", a), ("b", b), ("c", c))
    }
    print(
        f"{'a later epoch (mean)':32} {f(steady['a']):>10} {f(steady['b']):>15} {f(steady['c']):>12} "
        f"{ratio(steady['a'], steady['b']):>11} {ratio(steady['a'], steady['c']):>12}"
    )
    extra = a["end_to_end"] - b["end_to_end"]
    print(
        f"\nraydl adds {extra:+.1f} s end to end over the bare Ray Train script (which has no "
        "cleaning, stratified split, fitted scaling, test evaluation or report)."
    )
    if "data_work" in results:
        w, prep = results["data_work"], a["phases"]["data preparation"]
        print(
            f"data preparation: raydl {prep:.2f} s; its work in numpy in one process {w['total']:.2f} s "
            f"({prep / w['total']:.1f}x): " + ", ".join(f"{k} {v:.2f}" for k, v in w["steps"].items())
        )
        # Ray Data's first executions start its operators in fresh workers: raydl pays for
        # that in data preparation, the bare script (its rows parsed and scaled before the
        # clock starts) in its first batch
        if "ray_data_work" in results:
            r = results["ray_data_work"]
            cold, warm = r["cold"]["total"], r["warm"]["total"]
            print(
                f"the same work written plainly in Ray Data: {cold:.2f} s cold, in a fresh Ray "
                f"({prep / cold:.2f}x raydl / plain Ray Data: raydl's own share {prep - cold:+.2f} s), "
                f"{warm:.2f} s warm: " + ", ".join(f"{k} {v:.2f}" for k, v in r["cold"]["steps"].items())
            )
        first = [r["phases"]["data preparation"] + r["phases"]["loop to first batch"] for r in (a, b)]
        print(
            f"data preparation + first batch: raydl {first[0]:.2f} s, bare {first[1]:.2f} s: raydl's "
            f"data stage adds {first[0] - first[1]:+.2f} s to what the bare script's Ray Data costs, "
            f"for {w['total']:.2f} s of work"
        )
    shares = [s for s in a["data_wait_share"] if s is not None]
    if shares:
        print(
            f"raydl's loop waited for data {100 * max(shares):.1f} % of its train time at most (per epoch: "
            + ", ".join(f"{100 * s:.1f} %" for s in shares)
            + ")"
        )
    if len(results.get("pairs", [])) > 1:
        print("\nraydl against bare Ray Train, pair by pair (end to end; data preparation, to the loop):")
        for k, q in enumerate(results["pairs"], 1):
            (dp_a, dp_b), (tl_a, tl_b) = q["data_preparation"], q["to_the_loop"]
            print(
                f"  {k}. {q['order']:12} raydl {q['raydl']:6.1f}  bare {q['bare']:6.1f}  "
                f"adds {q['adds']:+5.1f}"
                f"   data {dp_a:5.2f} / {dp_b:4.2f}   to the loop {tl_a:5.2f} / {tl_b:5.2f}"
            )
        print(f"  median: raydl adds {results['adds_median_of_pairs']:+.1f} s")
    accs = ", ".join(f"{k} {f(r['val_accuracy'])}" for k, r in (("raydl", a), ("bare", b), ("plain", c)))
    print(f"val accuracy: {accs}")
    print(f"load average {results['load_average_before']} before, {results['load_average_after']} after")
    # the load after is mostly this benchmark's own (its programs keep every core busy)
    if results["load_average_before"][0] > 0.5 * (os.cpu_count() or 1):
        print("warning: the machine was busy before this run (load average); rerun it on an idle machine")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=30000, help="first Fashion-MNIST rows used")
    parser.add_argument("--epochs", type=int, default=3, help="epochs (at least 2)")
    parser.add_argument("--workers", type=int, default=2, help="training processes in all three")
    parser.add_argument("--batch-size", type=int, default=128, help="global batch size")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--pairs",
        type=int,
        default=1,
        help="raydl/bare pairs run by turns (the first is (a) and (b)); prints the median of what raydl adds",
    )
    parser.add_argument("--data-path", default=FASHION, help="folder of the Fashion-MNIST IDX files")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds before a program is abandoned")
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).resolve().parent / "results" / "startup.json"
    )
    args = parser.parse_args(argv)
    if args.epochs < 2:
        parser.error("--epochs must be at least 2")
    if args.pairs < 1:
        parser.error("--pairs must be at least 1")
    params = {"channels": [16, 32], "hidden": 128, "dropout": 0.1}  # jobs/fashion_mnist_cnn.yaml's
    results: dict[str, Any] = {
        "benchmark": "startup",
        "created": dt.datetime.now().isoformat(timespec="seconds"),
        "command": [sys.executable, *sys.argv],
        "config": {k: getattr(args, k) for k in ("rows", "epochs", "workers", "batch_size", "seed")},
        "machine": machine_facts(),
        "load_average_before": [round(v, 2) for v in os.getloadavg()],
    }
    work = Path(tempfile.mkdtemp(prefix="raydl-startup-"))
    try:
        data_file = work / "rows.npz"
        np.savez(data_file, **load_rows(args.rows, args.seed, args.data_path))
        print(f"(a) raydl run, {args.workers} worker(s)", flush=True)
        results["raydl"] = run_raydl(args, work)
        time.sleep(3)  # let Ray's processes exit before the next program takes the CPUs
        print("(b) bare ray.init + TorchTrainer", flush=True)
        results["bare_ray_train"] = run_bare(args, work, data_file, params)
        time.sleep(3)
        print(f"(c) plain PyTorch (torchrun, {args.workers} process(es))", flush=True)
        try:
            results["plain"] = run_plain(args, work, data_file, params)
        except RuntimeError as e:
            # gloo aborts a torchrun process now and then (SIGABRT, about one run in
            # eight here); one retry, said in the results, keeps the other two programs' run
            print(f"(c) failed, run again: {str(e).splitlines()[0]}", flush=True)
            results["plain_retried"] = str(e)[-2000:]
            time.sleep(3)
            results["plain"] = run_plain(args, work, data_file, params)
        print("(d) the data stage's work in numpy", flush=True)
        results["data_work"] = run_work(args, work)
        time.sleep(3)
        print("(e) the same work written plainly in Ray Data", flush=True)
        results["ray_data_work"] = run_ray_data(args, work)
        results["pairs"] = [pair_of(results["raydl"], results["bare_ray_train"], "raydl first")]
        arms = {
            "raydl": lambda k: run_raydl(args, work),
            "bare": lambda k: run_bare(args, work, data_file, params),
        }
        for order, runs in more_pairs(args.pairs, arms, rest_s=3):
            results["pairs"].append(pair_of(runs["raydl"], runs["bare"], order))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    results["load_average_after"] = [round(v, 2) for v in os.getloadavg()]
    results["adds_median_of_pairs"] = statistics.median(q["adds"] for q in results["pairs"])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, default=str) + "\n")
    show(results)
    print(f"results: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
