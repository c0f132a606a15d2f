"""Serving throughput and latency: the same Predictor behind raydl's Serve app (batching on
and off) and behind a plain FastAPI/uvicorn process, side by side in one run, with a bounded
aiohttp client on loopback at concurrency 1, 8 and 32. Prints a table and ratios, writes JSON.

    python benchmarks/serve_load.py RUN_DIR [--requests 400] [--out serve_load.json]

RUN_DIR: a trained classification run on image/tensor rows (digits, Fashion-MNIST). The
machine's load changes absolute figures; the ratios against plain uvicorn in the same run
are what to read.
"""

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import time

import aiohttp
import numpy as np

CONCURRENCY = (1, 8, 32)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def plain_app(run_dir: str):
    """The plain alternative: one uvicorn process, the Predictor called inline."""
    from fastapi import FastAPI, Request

    from raydl.predict import Predictor

    predictor = Predictor.from_run(run_dir)
    app = FastAPI()

    @app.post("/predict")
    async def predict(request: Request):
        body = await request.json()
        rows = body.get("instances", [body])
        return {"predictions": predictor.predict(rows)}

    return app


async def load(url: str, body: bytes, n: int, concurrency: int) -> dict[str, float]:
    lat: list[float] = []
    sem = asyncio.Semaphore(concurrency)
    conn = aiohttp.TCPConnector(limit=concurrency)  # keep-alive connections, one per worker
    async with aiohttp.ClientSession(connector=conn) as s:

        async def one():
            async with sem:
                t = time.perf_counter()
                async with s.post(url, data=body, headers={"Content-Type": "application/json"}) as r:
                    await r.read()
                    assert r.status == 200, r.status
                lat.append(time.perf_counter() - t)

        for _ in range(min(n, 10)):  # warm-up
            await one()
        lat.clear()
        start = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(n)))
        wall = time.perf_counter() - start
    ms = np.asarray(lat) * 1e3
    return {
        "rps": n / wall,
        "p50_ms": float(np.percentile(ms, 50)),
        "p95_ms": float(np.percentile(ms, 95)),
        "p99_ms": float(np.percentile(ms, 99)),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("run_dir")
    ap.add_argument("--requests", type=int, default=400)
    ap.add_argument("--out", default="serve_load.json")
    args = ap.parse_args()

    import sklearn.datasets

    from raydl.predict import Predictor

    shape = Predictor.from_run(args.run_dir).input_schema["fields"][0]["shape"]
    x = np.zeros(shape, np.float32)
    if list(shape[-2:]) == [8, 8]:
        x = sklearn.datasets.load_digits().images[0].reshape(shape)
    body = json.dumps({"x": x.tolist()}).encode()
    results: dict[str, dict[int, dict[str, float]]] = {}

    # plain uvicorn in its own process (as a user would run it)
    port = free_port()
    code = (
        "import sys, uvicorn; sys.path.insert(0, 'benchmarks'); import serve_load; "
        f"uvicorn.run(serve_load.plain_app({args.run_dir!r}), host='127.0.0.1', port={port}, "
        "log_level='warning')"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        _wait(f"http://127.0.0.1:{port}/predict", body)
        results["uvicorn"] = {
            c: asyncio.run(load(f"http://127.0.0.1:{port}/predict", body, args.requests, c))
            for c in CONCURRENCY
        }
    finally:
        proc.terminate()
        proc.wait()

    import ray
    from ray import serve

    from raydl.serve.app import application
    from raydl.spec.serve import ServeSpec

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    try:
        for name, batching in (
            ("serve batched", {"max_batch_size": 32, "wait_s": 0.005}),
            ("serve unbatched", {"enabled": False}),
        ):
            spec = ServeSpec(num_cpus=0, batching=batching, max_ongoing_requests=64, max_queued_requests=-1)
            serve.run(application(args.run_dir, spec), name="bench", route_prefix="/")
            url = f"http://127.0.0.1:{port}/predict"
            _wait(url, body)
            results[name] = {c: asyncio.run(load(url, body, args.requests, c)) for c in CONCURRENCY}
            serve.delete("bench")
    finally:
        serve.shutdown()
        ray.shutdown()

    print(f"load average {os.getloadavg()}")
    head = ("server", "conc", "req/s", "p50 ms", "p95 ms", "p99 ms", "rps/uvicorn")
    print("{:18} {:>4} {:>8} {:>8} {:>8} {:>8} {:>12}".format(*head))
    for name, by_c in results.items():
        for c, r in by_c.items():
            ratio = r["rps"] / results["uvicorn"][c]["rps"]
            print(
                f"{name:18} {c:>4} {r['rps']:8.1f} {r['p50_ms']:8.2f} {r['p95_ms']:8.2f} "
                f"{r['p99_ms']:8.2f} {ratio:12.2f}"
            )
    b, u = results["serve batched"][32]["rps"], results["serve unbatched"][32]["rps"]
    print(f"batched / unbatched at 32: {b / u:.2f}x")
    added = results["serve unbatched"][1]["p50_ms"] - results["uvicorn"][1]["p50_ms"]
    print(f"serve added p50 at 1: {added:.2f} ms")
    with open(args.out, "w") as f:
        json.dump({"load_average": os.getloadavg(), "results": results}, f, indent=2)


def _wait(url: str, body: bytes, timeout: float = 120) -> None:
    import urllib.error
    import urllib.request

    deadline = time.time() + timeout
    while True:
        try:
            req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=10) as r:
                if r.status == 200:
                    return
        except urllib.error.HTTPError as e:
            raise RuntimeError(f"{url}: {e.code} {e.read()[:300]!r}") from None
        except OSError:
            if time.time() > deadline:
                raise
            time.sleep(0.5)


if __name__ == "__main__":
    main()
