"""What survives a fault, measured on real local Ray clusters: a worker node removed mid-
training, a worker node removed while Ray Data preprocesses, a search trial's process
killed (and another that keeps raising). Each scenario injects its fault for real (the
node's raylet and workers are killed by ``ray.cluster_utils.Cluster.remove_node``, a
trial kills its own process with SIGKILL) and runs the same job undisturbed to compare.

It prints one table: fault injected | what survived | rows or requests lost | epochs
repeated | time to recover, and writes every figure, with the load average before the
run, to ``benchmarks/results/reliability.json``. It asserts nothing; the one scenario
CI runs is ``data-prep`` (tests/reliability/test_node_loss.py runs it with ``--json``).

    .venv/bin/python benchmarks/reliability.py                  # every scenario, ~5 min idle
    .venv/bin/python benchmarks/reliability.py --only training   # one (see --help)

A scenario is a function registered with ``@scenario(name, fault)`` that returns a
:class:`Row`; the table is every registered scenario in order. A Serve replica-kill row
("serve replica killed": requests lost while Serve replaces it) belongs here as one more
``@scenario``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.reliability.faulty, the search scenario's model

# Set before any Ray process starts (they inherit it): small blocks would be inlined in
# their owner's memory and survive any node; keep every block in the object store of the
# node whose task made it, so a lost node loses its blocks for real.
os.environ.setdefault("RAY_max_direct_call_object_size", "0")
os.environ.setdefault("RAY_raylet_start_wait_time_s", "120")
os.environ.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", WANDB_MODE="offline")

NODE = {"object_store_memory": 128 * 1024 * 1024}


@dataclass
class Row:
    """One line of the table, and the figures behind it."""

    fault: str
    survived: str
    lost: str
    epochs_repeated: str
    recover_s: float | None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class Scenario:
    name: str
    fault: str
    run: Callable[[argparse.Namespace], Row]


SCENARIOS: list[Scenario] = []


def scenario(name: str, fault: str) -> Callable[[Callable[[argparse.Namespace], Row]], Callable]:
    """Register a scenario (``--only name``); the table lists them in registration order."""

    def add(fn: Callable[[argparse.Namespace], Row]) -> Callable[[argparse.Namespace], Row]:
        if any(s.name == name for s in SCENARIOS):
            raise ValueError(f"scenario {name!r} registered twice")
        SCENARIOS.append(Scenario(name, fault, fn))
        return fn

    return add


# ------------------------------------------------------------------ the cluster
@contextlib.contextmanager
def local_cluster(head_cpus: int, worker_cpus: list[int]) -> Iterator[tuple[Any, list[Any]]]:
    """A real multi-node Ray on this machine (each node its own raylet and object store,
    in its own temp dir), this process connected as the driver. Yields (cluster, worker
    nodes); stops only the nodes it started."""
    import ray
    from ray._common.utils import get_default_ray_temp_dir
    from ray.cluster_utils import Cluster

    from raydl.runtime import quiet_ray_data

    temp_dir = tempfile.mkdtemp(prefix="raydl-rel-", dir="/tmp")
    # Cluster() records the head's address in Ray's default temp dir (/tmp/ray) whatever
    # temp_dir it is given, and fails on a machine where no Ray has run yet without it
    os.makedirs(get_default_ray_temp_dir(), exist_ok=True)
    head = NODE | {"num_cpus": head_cpus, "temp_dir": temp_dir, "include_dashboard": False}
    cluster = Cluster(initialize_head=True, head_node_args=head)
    try:
        workers = [cluster.add_node(**NODE, num_cpus=n) for n in worker_cpus]
        ray.init(address=cluster.address, log_to_driver=False)
        cluster.wait_for_nodes()
        quiet_ray_data()
        yield cluster, workers
    finally:
        ray.shutdown()
        cluster.shutdown()
        shutil.rmtree(temp_dir, ignore_errors=True)


def _alive_nodes() -> int:
    import ray

    return sum(1 for n in ray.nodes() if n["Alive"])


def kill_node_when(cluster: Any, node: Any, ready: Callable[[], bool], timeout: float) -> dict[str, Any]:
    """Start a thread that removes ``node`` (SIGKILL of its raylet and workers) as soon as
    ``ready()``; returns the dict it fills: ``killed_at`` (monotonic), ``busy_cpus`` (CPUs
    of the node in use at that moment)."""
    import ray._private.state as state

    out: dict[str, Any] = {}

    def watch() -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and "stop" not in out:
            if ready():
                total = state.total_resources_per_node().get(node.node_id, {}).get("CPU", 0)
                free = state.available_resources_per_node().get(node.node_id, {}).get("CPU", 0)
                out["busy_cpus"] = total - free
                out["killed_at"] = time.monotonic()
                cluster.remove_node(node, allow_graceful=False)
                return
            time.sleep(0.02)

    out["thread"] = threading.Thread(target=watch, name="node-killer", daemon=True)
    out["thread"].start()
    return out


def _node_busy(node: Any) -> Callable[[], bool]:
    """Whether a task or actor holds CPUs of ``node`` now (Ray's resource view)."""
    import ray._private.state as state

    def busy() -> bool:
        total = state.total_resources_per_node().get(node.node_id, {}).get("CPU", 0)
        free = state.available_resources_per_node().get(node.node_id, {}).get("CPU", total)
        return free < total

    return busy


# ------------------------------------------------------------- data preparation
def digits_csv_folder(folder: Path, files: int) -> Path:
    """sklearn's digits (1,797 rows) as ``files`` CSV files: one read task each, so the
    preparation is many tasks spread over the nodes."""
    import numpy as np
    from sklearn.datasets import load_digits

    d = load_digits(as_frame=True).frame
    folder.mkdir(parents=True, exist_ok=True)
    for i, part in enumerate(np.array_split(np.arange(len(d)), files)):
        d.iloc[part].to_csv(folder / f"part-{i:03d}.csv", index=False)
    return folder


def _prep_spec(folder: Path) -> Any:
    from raydl.spec import validate_spec

    return validate_spec(
        {
            "name": "digits-node-loss",
            "seed": 0,
            "data": {
                "source": {"type": "csv", "path": str(folder)},
                "label": "target",
                "clean": {"dedupe": True},
                "cache": "always",
            },
            "model": {"arch": "mlp"},
        }
    )


def _prep_facts(prepared: Any) -> dict[str, Any]:
    r = prepared.report
    counts = {name: ds.count() for name, ds in prepared.datasets.items()}
    return {
        "rows": r["rows"],
        "split": r["split"]["rows"],
        "counted": counts,
        "fingerprint": r["fingerprint"],
    }


@scenario("data-prep", "worker node lost during data prep")
def node_lost_during_data_prep(args: argparse.Namespace) -> Row:
    """Prepare digits (``--files`` CSV files) undisturbed on a head (1 CPU) + worker node
    (2 CPUs), then again, removing the worker node the moment a Ray Data task holds its
    CPUs. Ray retries the lost node's tasks (and rebuilds its lost blocks) on the head.
    Time to recover: the disturbed preparation's seconds less the undisturbed one's (a
    second undisturbed run, the first warms the workers up; not with ``--quick``)."""
    from raydl.data.prepare import prepare_data

    work = Path(tempfile.mkdtemp(prefix="raydl-rel-data-"))
    spec = _prep_spec(digits_csv_folder(work / "digits", args.files))
    with local_cluster(1, [2]) as (cluster, (worker,)):
        for _ in range(1 if args.quick else 2):
            t0 = time.monotonic()
            calm = _prep_facts(prepare_data(spec))
            calm_s = time.monotonic() - t0
        kill = kill_node_when(cluster, worker, _node_busy(worker), timeout=120)
        t0 = time.monotonic()
        hit = _prep_facts(prepare_data(spec))
        hit_s = time.monotonic() - t0
        kill["stop"] = True
        kill["thread"].join()
        nodes_after = _alive_nodes()
    shutil.rmtree(work, ignore_errors=True)
    killed = "killed_at" in kill
    same = hit == calm
    details = {
        "undisturbed": calm,
        "disturbed": hit,
        "undisturbed_s": calm_s,
        "disturbed_s": hit_s,
        "killed": killed,
        "killed_after_s": kill["killed_at"] - t0 if killed else None,
        "busy_cpus_at_kill": kill.get("busy_cpus"),
        "alive_nodes_after": nodes_after,
        "same_rows_split_fingerprint": same,
    }
    lost = sum(calm["counted"].values()) - sum(hit["counted"].values())
    return Row(
        fault="worker node lost during data prep",
        survived=("prep completed on the head; same rows, splits, fingerprint" if same else "DIFFERENT data")
        if killed
        else "the node was never busy: nothing killed",
        lost=f"{lost} rows",
        epochs_repeated="—",
        recover_s=hit_s - calm_s if killed and not args.quick else None,
        details=details,
    )


# ------------------------------------------------------------------- training
def _epochs(run_dir: Path) -> list[dict[str, Any]]:
    path = run_dir / "metrics.jsonl"
    return [json.loads(x) for x in path.read_text().splitlines()] if path.is_file() else []


def _train_spec(args: argparse.Namespace) -> Any:
    from raydl.spec import load_spec

    return load_spec(
        f"{ROOT}/jobs/digits_cnn.yaml",
        [
            f"train.epochs={args.epochs}",
            "train.early_stopping=null",
            "train.max_failures=1",
            "train.workers=2",
            "train.cpus_per_worker=0.5",
            f"train.checkpoint.every={args.every}",
        ],
    )


def _worker_nodes() -> list[str]:
    import ray

    actors = ray._private.state.actors().values()
    return [
        a["Address"]["NodeID"]
        for a in actors
        if a["ActorClassName"].endswith("RayTrainWorker") and a["State"] == "ALIVE"
    ]


@scenario("training", "worker node lost mid-training")
def node_lost_mid_training(args: argparse.Namespace) -> Row:
    """The digits CNN, 2 Ray Train workers (0.5 CPU each), ``train.max_failures: 1``, on a
    head (1 CPU) + two worker nodes (2 CPUs each): once, undisturbed; then again, removing
    the worker node that holds a Ray Train worker once ``--kill-after`` epochs are logged.
    Ray Train restarts the worker group on what is left, from the last checkpoint."""
    import raydl

    spec = _train_spec(args)
    work = Path(tempfile.mkdtemp(prefix="raydl-rel-train-"))
    with local_cluster(1, [2, 2]) as (cluster, workers):
        calm = raydl.run(spec, runs_root=work / "calm")
        runs_root = work / "hit"

        def epoch_logged() -> bool:
            runs = list(runs_root.glob("digits-cnn-*"))
            return bool(runs) and len(_epochs(runs[0])) >= args.kill_after and bool(_worker_nodes())

        holder: dict[str, Any] = {}

        def ready() -> bool:
            if not epoch_logged():
                return False
            hosts = set(_worker_nodes())
            node = next((w for w in workers if w.node_id in hosts), None)
            holder["node"] = node
            return node is not None

        # the node to kill is chosen when the epochs are in: the one holding a worker
        kill: dict[str, Any] = {}

        def watch() -> None:
            deadline = time.monotonic() + 900
            while time.monotonic() < deadline and "stop" not in kill:
                if ready():
                    kill["epochs_logged"] = len(_epochs(next(runs_root.glob("digits-cnn-*"))))
                    kill["killed_at"], kill["wall"] = time.monotonic(), time.time()
                    cluster.remove_node(holder["node"], allow_graceful=False)
                    break
                time.sleep(0.1)
            # then the restarted group's first epoch, as it reaches the metrics log
            while time.monotonic() < deadline and "killed_at" in kill and "stop" not in kill:
                runs = list(runs_root.glob("digits-cnn-*"))
                if any("resumed_from_epoch" in r for r in _epochs(runs[0])):
                    kill["resumed_seen"] = time.monotonic()
                    return
                time.sleep(0.1)

        thread = threading.Thread(target=watch, daemon=True)
        thread.start()
        t0 = time.monotonic()
        hit = raydl.run(spec, runs_root=runs_root)
        hit_s = time.monotonic() - t0
        kill["stop"] = True
        thread.join()
        nodes_after = _alive_nodes()
    rows = _epochs(hit.run_dir)
    resumed = [r for r in rows if "resumed_from_epoch" in r]
    killed = "killed_at" in kill
    start = resumed[0]["resumed_from_epoch"] if resumed else None
    repeated = kill.get("epochs_logged", 0) - start if start is not None else None
    # time to recover: the kill → the restarted group's first epoch in the log, less the
    # seconds of that epoch (polled every 0.1 s)
    first = next((r for r in resumed), None)
    recover = None
    if first is not None and "resumed_seen" in kill:
        recover = kill["resumed_seen"] - kill["killed_at"] - first["epoch_seconds"]
    keys = ("epoch", "train_loss", "val_loss", "val_accuracy", "lr", "resumed_from_epoch")
    calm_rows = _epochs(calm.run_dir)
    shutil.rmtree(work, ignore_errors=True)
    same = hit.metrics["accuracy"] == calm.metrics["accuracy"]
    details = {
        "killed": killed,
        # every epoch's numbers, undisturbed and disturbed (tests/reliability compares them)
        "calm_epochs": [{k: r[k] for k in keys if k in r} for r in calm_rows],
        "hit_epochs": [{k: r[k] for k in keys if k in r} for r in rows],
        "epochs": args.epochs,
        "checkpoint_every": args.every,
        "epochs_logged_at_kill": kill.get("epochs_logged"),
        "resumed_from_epoch": start,
        "accuracy_undisturbed": calm.metrics["accuracy"],
        "accuracy_disturbed": hit.metrics["accuracy"],
        "epochs_run": hit.metrics["epochs_run"],
        "disturbed_s": hit_s,
        "alive_nodes_after": nodes_after,
    }
    return Row(
        fault="worker node lost mid-training",
        survived=(
            f"training restarted on the nodes left, finished; accuracy {'=' if same else '≠'} undisturbed"
            f" ({hit.metrics['accuracy']:.4f})"
        )
        if killed and resumed
        else "no restart seen",
        lost="0 rows (a partial epoch)",
        epochs_repeated=f"{repeated} completed (+ the partial one); every={args.every}"
        if repeated is not None
        else "—",
        recover_s=recover,
        details=details,
    )


# --------------------------------------------------------------------- search
@scenario("search", "trial crash in search")
def trial_crash_in_search(args: argparse.Namespace) -> Row:
    """tests/reliability/test_search_faults.py's search, as a measurement: iris, two
    trials of 2 epochs, ``tune.max_failures: 1``; one trial kills its own process (SIGKILL)
    at epoch 2's first step, the other raises at every step. One-node Ray, 4 CPUs."""
    import ray

    import raydl
    from raydl.runtime import quiet_ray_data
    from tests.reliability.faulty import search_spec

    work = Path(tempfile.mkdtemp(prefix="raydl-rel-search-"))
    marker = work / "killed-once"
    ray.init(address="local", num_cpus=4, include_dashboard=False, log_to_driver=False)
    quiet_ray_data()
    try:
        t0 = time.monotonic()
        result = raydl.run(search_spec(marker), runs_root=work / "runs")
        search_s = time.monotonic() - t0
    finally:
        ray.shutdown()
    killed_wall = marker.stat().st_mtime if marker.is_file() else None
    tune_dir = result.run_dir / "tune"
    epochs = [json.loads(x) for x in (tune_dir / "epochs.jsonl").read_text().splitlines()]
    resumed = [r for r in epochs if "resumed_from_epoch" in r]
    s = result.metrics["search"]
    recover = None
    if resumed and killed_wall is not None:
        # Tune's result timestamp is whole seconds: this figure is ±1 s
        recover = resumed[0]["timestamp"] - killed_wall - resumed[0]["epoch_seconds"]
    once = [r for r in epochs if r["trial_id"] == (resumed[0]["trial_id"] if resumed else None)]
    repeated = (
        sum("resumed_from_epoch" not in r for r in once) - resumed[0]["resumed_from_epoch"]
        if resumed
        else None
    )
    shutil.rmtree(work, ignore_errors=True)
    return Row(
        fault="trial crash in search (1 SIGKILL, 1 raising)",
        survived=f"search finished: {s['trials'] - s['failed']} of {s['trials']} trials, "
        f"best evaluated (accuracy {result.metrics['accuracy']:.4f}); failed: {s['failed']}",
        lost="0 rows",
        epochs_repeated=f"{repeated} completed (+ the partial one)" if repeated is not None else "—",
        recover_s=recover,
        details={
            "search": s,
            "search_s": search_s,
            "resumed": [r.get("resumed_from_epoch") for r in resumed],
        },
    )


@scenario("serve", "Serve replica killed under load")
def replica_killed_under_load(args: argparse.Namespace) -> Row:
    """A tiny digits CNN behind one Serve replica on a one-node Ray; 4 client threads (2
    retry on 5xx and connection errors) for 10 s; 2 s in, the replica's actor is killed
    (``benchmarks/faults.py::kill_replica_under_load``, what tests/e2e/test_serve.py runs)."""
    import ray
    import sklearn.datasets
    from ray import serve

    import raydl
    from benchmarks.faults import TINY_DIGITS, kill_replica_under_load
    from raydl.serve.app import application
    from raydl.serve.config import RAY_ENV
    from raydl.spec import ServeSpec, validate_spec
    from tests.reliability.test_head_loss import _free_port

    for name, value in RAY_ENV.items():
        os.environ.setdefault(name, value)
    work = Path(tempfile.mkdtemp(prefix="raydl-rel-serve-"))
    port = _free_port()
    ray.init(address="local", num_cpus=4, include_dashboard=False, log_to_driver=False)
    try:
        spec = validate_spec(TINY_DIGITS)
        run_dir = raydl.run(spec, runs_root=work / "runs").run_dir
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        serve.run(application(str(run_dir), ServeSpec(num_cpus=0)), name="digits", route_prefix="/")
        body = json.dumps({"x": sklearn.datasets.load_digits().images[11].tolist()}).encode()
        report = kill_replica_under_load(
            f"http://127.0.0.1:{port}/predict", body, app="digits", deployment="Model", seconds=10
        )
    finally:
        serve.shutdown()
        ray.shutdown()
        shutil.rmtree(work, ignore_errors=True)
    plain, retrying = report["plain"], report["retrying"]
    return Row(
        fault="Serve replica killed under load (1 replica, 4 clients)",
        survived=f"replica replaced: {report['replaced']}; answered after: "
        f"{plain['answered_after'] + retrying['answered_after']}",
        lost=f"{plain['failed']} of {plain['sent']} failed without retry "
        f"({plain['failed_share']:.1%}); {retrying['lost']} of {retrying['sent']} lost with retry",
        epochs_repeated="—",
        recover_s=report["recover_s"],
        details=report,
    )


@scenario("head", "head node lost mid-training")
def head_lost_mid_training(args: argparse.Namespace) -> Row:
    """A real ``ray start --head``; ``raydl run`` joins it (digits CNN, 2 workers, 5 epochs)
    and its GCS and raylet are SIGKILLed once 2 epochs are logged; then ``raydl run
    --resume`` on an embedded Ray (what tests/reliability/test_head_loss.py asserts)."""
    import subprocess

    from tests.reliability.test_head_loss import _free_port, _kill, _pids_of

    work = Path(tempfile.mkdtemp(prefix="raydl-rel-head-"))
    temp_dir, port, bin_ = f"/tmp/rdl-head-bench-{os.getpid()}", _free_port(), Path(sys.executable).parent
    epochs = 5
    subprocess.run(
        [str(bin_ / "ray"), "start", "--head", f"--port={port}", "--num-cpus=4", f"--temp-dir={temp_dir}",
         "--include-dashboard=false", "--object-store-memory=300000000", "--disable-usage-stats"],
        env={**os.environ, "RAY_ADDRESS": ""}, capture_output=True, check=True, timeout=120,
    )  # fmt: skip
    runs = work / "runs"
    try:
        job = subprocess.Popen(
            [str(bin_ / "raydl"), "run", "jobs/digits_cnn.yaml", f"train.epochs={epochs}",
             "train.early_stopping=null", "--output", str(runs)],
            cwd=ROOT, env={**os.environ, "RAY_ADDRESS": f"127.0.0.1:{port}"},
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        seen = 0
        while job.poll() is None and seen < 2:
            logs = list(runs.glob("*/metrics.jsonl"))
            seen = len(logs[0].read_text().splitlines()) if logs else 0
            time.sleep(0.2)
        _kill(_pids_of(temp_dir, ("gcs_server", "raylet")))
        killed = time.monotonic()
        _, err = job.communicate(timeout=300)
        failed_s = time.monotonic() - killed
        line = next((x for x in err.splitlines() if x.startswith("error:")), "")
        (run_dir,) = runs.iterdir()
        t0 = time.monotonic()
        done = subprocess.run(
            [str(bin_ / "raydl"), "run", "--resume", str(run_dir)], cwd=ROOT,
            env={**os.environ, "RAY_ADDRESS": ""}, capture_output=True, text=True, timeout=900,
        )  # fmt: skip
        resume_s = time.monotonic() - t0
        rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
        metrics = json.loads((run_dir / "metrics.json").read_text()) if done.returncode == 0 else {}
    finally:
        _kill(_pids_of(temp_dir))
    resumed = [r for r in rows if "resumed_from_epoch" in r]
    start = resumed[0]["resumed_from_epoch"] if resumed else None
    return Row(
        fault="head node lost mid-training (GCS + raylet SIGKILLed)",
        survived=f"exit {job.returncode} in {failed_s:.0f} s with one line; --resume from epoch {start}: "
        f"exit {done.returncode}, accuracy {metrics.get('accuracy', float('nan')):.4f}",
        lost="0 rows",
        epochs_repeated=f"{seen - start} completed (+ the partial one)" if start is not None else "—",
        recover_s=failed_s + resume_s,
        details={"error_line": line, "seen_at_kill": seen, "resumed_from": start, "resume_s": resume_s},
    )


# ----------------------------------------------------------------------- main
def _table(rows: list[Row]) -> str:
    head = ["fault injected", "what survived", "rows or requests lost", "epochs repeated", "time to recover"]
    lines = ["| " + " | ".join(head) + " |", "| --- | --- | ---: | ---: | ---: |"]
    for r in rows:
        rec = f"{r.recover_s:.1f} s" if r.recover_s is not None else "—"
        lines.append(f"| {r.fault} | {r.survived} | {r.lost} | {r.epochs_repeated} | {rec} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    names = [s.name for s in SCENARIOS]
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", action="append", choices=names, help="run only these scenarios")
    p.add_argument("--epochs", type=int, default=4, help="training: epochs (default 4)")
    p.add_argument("--every", type=int, default=1, help="training: train.checkpoint.every")
    p.add_argument("--kill-after", type=int, default=2, help="training: epochs logged before the kill")
    p.add_argument("--files", type=int, default=16, help="data-prep: CSV files (read tasks), default 16")
    p.add_argument("--quick", action="store_true", help="data-prep: no warm-up run, no recovery time (CI)")
    p.add_argument("--json", action="store_true", help="print the rows as one JSON line (tests read it)")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "reliability.json")
    args = p.parse_args(argv)
    load = os.getloadavg()
    rows = [s.run(args) for s in SCENARIOS if not args.only or s.name in args.only]
    if args.json:
        print(json.dumps([asdict(r) for r in rows], default=str))
        return
    print(f"load average before the run: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} ({os.cpu_count()} CPUs)")
    print(_table(rows))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps({"load_before": load, "rows": [asdict(r) for r in rows]}, indent=2, default=str) + "\n"
    )


if __name__ == "__main__":
    main()
