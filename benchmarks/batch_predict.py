"""`raydl predict` (Ray Data map_batches over an actor pool) vs a plain single-process loop
of the same Predictor; and one row through `Predictor.predict` vs the torch model on a
ready tensor.

The claims (issue 12): on 2 cores `raydl predict` predicts 10,000 Fashion-MNIST PNG images
at least 1.5x faster than a plain loop of the same Predictor; `Predictor.predict` answers
one tabular row with an MLP in at most 2 ms (p50).

Both sides do the same work per batch: read the input (PNG files as bytes; parquet record
batches), the Predictor's preprocess (decode/parse) → forward → post-process, and write
the answers to a parquet file. The plain loop runs in this process with torch's default
threads (and, to show how far torch's own threads go, with one); `raydl predict` is
``raydl.batch_predict.predict_files`` on an embedded Ray started as `raydl` starts it (2x
the cores as logical CPUs; Ray's start-up is reported apart), ``--actors`` actors of one
torch thread each, a new actor pool per call as the command starts one.

Where the time goes: each side also predicts an input 4x as large, so that
``time = start-up + rows / rate`` splits the fixed cost (raydl: the actor pool starting
— a process each, importing torch, fetching the Predictor — and Ray Data's first tasks)
from the marginal rate (rows/s once running). The plain loop's time is also split into
its steps (read, preprocess, forward, post-process, write).

The two runs it predicts with are trained here first (one epoch each; accuracy does not
matter): a CNN on a 2,000-image folder, an MLP on 5,000 rows of the table.

    .venv/bin/python benchmarks/batch_predict.py [--images 10000] [--rows 100000] [--actors 2]

Writes benchmarks/results/batch_predict.json. Run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

RESULTS = Path(__file__).resolve().parent / "results"
CLASSES = ["tshirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "boot"]


def image_folder(out: Path, n: int, offset: int = 0) -> Path:
    """``n`` Fashion-MNIST images as PNG files, a sub-folder per class."""
    from PIL import Image

    from raydl.data.sources import FASHION_MNIST_DIR, read_idx

    src = Path(FASHION_MNIST_DIR)
    images = read_idx(src / "train-images-idx3-ubyte.gz")[offset : offset + n]
    labels = read_idx(src / "train-labels-idx1-ubyte.gz")[offset : offset + n]
    for c in CLASSES:
        (out / c).mkdir(parents=True, exist_ok=True)
    for i, (img, y) in enumerate(zip(images, labels)):
        Image.fromarray(img).save(out / CLASSES[y] / f"{offset + i:05d}.png")
    return out


def table(path: Path, n: int, seed: int = 0) -> Path:
    """A 10-number, 2-category table with a few gaps, as parquet."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    frame = pd.DataFrame({f"x{i}": rng.normal(size=n) + (y if i < 3 else 0) for i in range(10)})
    frame["color"] = rng.choice(["red", "green", "blue"], n)
    frame["city"] = [f"c{i}" for i in rng.integers(0, 40, n)]
    frame.loc[rng.random(n) < 0.02, "x0"] = np.nan
    frame["label"] = np.asarray(["a", "b", "c"])[y]
    frame.to_parquet(path, index=False)
    return path


def train(spec: dict, runs: Path) -> Path:
    import raydl
    from raydl.spec import validate_spec

    return raydl.run(validate_spec(spec), runs_root=runs).run_dir


def plain_loop(run: Path, batches, out: Path, threads: int | None = None) -> dict:
    """The same Predictor, one process (loaded inside the timing, as `raydl predict`
    loads it): rows/s and the seconds of each step."""
    import torch

    from raydl.predict import Columns, Predictor

    before = torch.get_num_threads()
    torch.set_num_threads(threads or before)
    start = time.perf_counter()
    p = Predictor.from_run(run)
    steps = dict.fromkeys(("read", "preprocess", "forward", "postprocess", "write"), 0.0)
    writer = None
    rows = 0
    t = time.perf_counter()
    for batch in batches:
        steps["read"] += time.perf_counter() - t
        t = time.perf_counter()
        prepared = p.preprocess(Columns(batch), unknown="ignore")
        steps["preprocess"] += (t2 := time.perf_counter()) - t
        outputs = p.forward(prepared.x)
        steps["forward"] += (t3 := time.perf_counter()) - t2
        post = p.postprocess(outputs)
        steps["postprocess"] += (t4 := time.perf_counter()) - t3
        cols = {"pred_label": post["label"].astype(str)} if "label" in post else {}
        result = pa.table(cols | {k: v for k, v in batch.items() if k not in ("image", "bytes")})
        writer = writer or pq.ParquetWriter(str(out), result.schema)
        writer.write_table(result)
        rows += len(prepared.good)
        steps["write"] += (t := time.perf_counter()) - t4
    writer.close()
    seconds = time.perf_counter() - start
    torch.set_num_threads(before)
    return {"rows": rows, "seconds": seconds, "rows_per_s": rows / seconds, "steps_s": steps}


def image_batches(folder: Path, batch: int):
    files = sorted(str(f) for f in folder.rglob("*.png"))  # the scaled input's copies too
    for i in range(0, len(files), batch):
        chunk = files[i : i + batch]
        data = np.empty(len(chunk), dtype=object)
        for j, f in enumerate(chunk):
            with open(f, "rb") as fh:
                data[j] = fh.read()
        yield {"image": data, "path": np.asarray(chunk)}


def table_batches(path: Path, batch: int):
    for rb in pq.ParquetFile(path).iter_batches(batch_size=batch):
        yield {name: rb.column(name).to_numpy(zero_copy_only=False) for name in rb.schema.names}


def raydl_predict(run: Path, input_path: Path, out: Path, actors: int, batch: int) -> dict:
    from raydl.batch_predict import predict_files

    start = time.perf_counter()
    first: list[float] = []

    def on_rows(done: int, failed: int) -> None:
        if not first:
            first.append(time.perf_counter() - start)

    result = predict_files(run, input_path, out, actors=actors, batch_size=batch, on_rows=on_rows)
    seconds = time.perf_counter() - start
    return {
        "rows": result.predicted,
        "failed": result.failed,
        "seconds": seconds,
        "first_rows_after_s": first[0],
        "rows_per_s": result.rows / seconds,
    }


def split(small: dict, large: dict) -> dict:
    """``time = start-up + rows / rate`` through the two sizes."""
    rate = (large["rows"] - small["rows"]) / max(large["seconds"] - small["seconds"], 1e-9)
    return {"marginal_rows_per_s": rate, "startup_s": small["seconds"] - small["rows"] / rate}


def latency(run: Path, row: dict, calls: int) -> dict:
    """p50/p90 of ``Predictor.predict(row)`` against the model on a ready (1, d) tensor."""
    import torch

    from raydl.predict import Predictor

    p = Predictor.from_run(run)
    model = p.backend.model
    x = torch.from_numpy(p.preprocess(row).x)

    def timed(fn) -> list[float]:
        for _ in range(50):
            fn()
        out = []
        for _ in range(calls):
            t = time.perf_counter()
            fn()
            out.append((time.perf_counter() - t) * 1e3)
        return out

    with torch.inference_mode():
        bare = timed(lambda: model(x))
    full = timed(lambda: p.predict(row))
    q = statistics.quantiles
    return {
        "predictor_p50_ms": statistics.median(full),
        "predictor_p90_ms": q(full, n=10)[-1],
        "model_p50_ms": statistics.median(bare),
        "model_p90_ms": q(bare, n=10)[-1],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=10_000)
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--actors", type=int, default=2)
    ap.add_argument("--batch", type=int, default=1024, help="rows per batch (raydl predict's default)")
    ap.add_argument("--scale", type=int, default=4, help="the larger input, for where the time goes")
    ap.add_argument("--calls", type=int, default=2000, help="single-row calls timed")
    ap.add_argument("--out", type=Path, default=RESULTS / "batch_predict.json")
    args = ap.parse_args()
    load_before = os.getloadavg()

    import torch

    from raydl.runtime import connect
    from raydl.spec import validate_spec

    work = Path(tempfile.mkdtemp(prefix="batch_predict-"))
    train_images = image_folder(work / "train_images", 2000)
    images = image_folder(work / "images", args.images, offset=20_000)
    rows = table(work / "table.parquet", args.rows)
    big_images = work / "images_x"
    for i in range(args.scale):  # the same images again, in more folders
        for c in CLASSES:
            (big_images / f"copy{i}" / c).mkdir(parents=True)
            for f in (images / c).iterdir():
                os.link(f, big_images / f"copy{i}" / c / f.name)
    big_rows = table(work / "table_x.parquet", args.rows * args.scale, seed=2)
    table(work / "train.parquet", 5000, seed=1)
    base_train = {"workers": 1, "cpus_per_worker": 0.5, "epochs": 1, "batch_size": 64}
    image_spec = {
        "name": "fmnist-png",
        "data": {"source": {"type": "images", "path": str(train_images)}, "image": {"shape": [1, 28, 28]}},
        "model": {"arch": "cnn", "params": {"channels": [16, 32], "hidden": 64}},
        "train": base_train,
    }
    table_spec = {
        "name": "table",
        "data": {
            "source": {"type": "parquet", "path": str(work / "train.parquet")},
            "clean": {"missing": "median"},
            "features": {"categorical": "onehot", "max_onehot": 8},
        },
        "model": {"arch": "mlp", "params": {"hidden": [64, 32]}},
        "train": base_train,
    }
    t = time.perf_counter()
    with connect(validate_spec(image_spec)):
        ray_start = time.perf_counter() - t
        image_run = train(image_spec, work / "runs")
        table_run = train(table_spec, work / "runs")
        results: dict = {"ray_start_s": ray_start}
        for name, run, small, large, batches in (
            ("images", image_run, images, big_images, image_batches),
            ("table", table_run, rows, big_rows, table_batches),
        ):
            r = results[name] = {}
            for size, path in (("", small), ("_x", large)):
                r[f"plain{size}"] = plain_loop(run, batches(path, args.batch), work / "plain.parquet")
                r[f"raydl{size}"] = raydl_predict(run, path, work / "raydl.parquet", args.actors, args.batch)
            r["plain_1_thread"] = plain_loop(
                run, batches(small, args.batch), work / "plain.parquet", threads=1
            )
            r["plain_split"] = split(r["plain"], r["plain_x"])
            r["raydl_split"] = split(r["raydl"], r["raydl_x"])
        first = pq.read_table(rows).slice(0, 1).to_pylist()[0]
        first.pop("label")
        results["latency"] = latency(table_run, first, args.calls)

    cores, threads = os.cpu_count(), torch.get_num_threads()
    print(
        f"\n{cores} cores, torch {torch.__version__} ({threads} threads in the plain loop), "
        f"{args.actors} actors x 1 thread; load average before {load_before[0]:.1f}, "
        f"after {os.getloadavg()[0]:.1f}"
    )
    print(f"Ray start-up (not in the figures below): {ray_start:.1f} s\n")
    print(
        "| input | plain loop rows/s | raydl predict rows/s | raydl / plain | plain, 1 thread | "
        "marginal rows/s plain / raydl | start-up s plain / raydl |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, label in (
        ("images", f"{args.images:,} PNG images, CNN"),
        ("table", f"{args.rows:,} rows, MLP"),
    ):
        r = results[name]
        r["ratio"] = r["raydl"]["rows_per_s"] / r["plain"]["rows_per_s"]
        r["marginal_ratio"] = (
            r["raydl_split"]["marginal_rows_per_s"] / r["plain_split"]["marginal_rows_per_s"]
        )
        print(
            f"| {label} | {r['plain']['rows_per_s']:,.0f} | {r['raydl']['rows_per_s']:,.0f} | "
            f"**{r['ratio']:.2f}x** | {r['plain_1_thread']['rows_per_s']:,.0f} | "
            f"{r['plain_split']['marginal_rows_per_s']:,.0f} / "
            f"{r['raydl_split']['marginal_rows_per_s']:,.0f} ({r['marginal_ratio']:.2f}x) | "
            f"{r['plain_split']['startup_s']:.1f} / {r['raydl_split']['startup_s']:.1f} |"
        )
    for name in ("images", "table"):
        steps = results[name]["plain"]["steps_s"]
        total = sum(steps.values())
        print(f"plain loop, {name}: " + ", ".join(f"{k} {v / total:.0%}" for k, v in steps.items()))
    lat = results["latency"]
    print(
        f"\none tabular row, MLP: Predictor.predict p50 {lat['predictor_p50_ms']:.3f} ms "
        f"(p90 {lat['predictor_p90_ms']:.3f}), model on a ready tensor p50 {lat['model_p50_ms']:.3f} ms "
        f"(p90 {lat['model_p90_ms']:.3f}): {lat['predictor_p50_ms'] / lat['model_p50_ms']:.1f}x"
    )
    results["machine"] = {
        "cores": cores,
        "torch": torch.__version__,
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "args": {k: str(v) for k, v in vars(args).items()},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
