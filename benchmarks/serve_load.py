"""Serving throughput and latency: the same Predictor behind raydl's Serve app (batching on
and off) and behind a plain FastAPI/uvicorn process, side by side in one run, with a bounded
aiohttp client on loopback at concurrency 1, 8 and 32. Prints a table and ratios, writes JSON.

    python benchmarks/serve_load.py RUN_DIR [--requests 400] [--out serve_load.json]
        [--modes default,throughput,haproxy]

Each Serve ``--modes`` entry runs in its own process with its own embedded Ray, the mode's
environment set before Ray starts (Serve reads these flags when its controller, proxy and
replicas import ``ray.serve._private.constants``, so they must be in the raylet's
environment, not an application's ``runtime_env``):

- ``default``: Ray Serve as installed (Python proxy actor → replica over Ray actor calls);
- ``loops``: only ``RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD=0`` and
  ``RAY_SERVE_RUN_ROUTER_IN_SEPARATE_LOOP=0`` (a replica runs user code, and a handle its
  router, on the one main event loop), Serve's proxies and topology unchanged;
- ``grpc``: ``RAY_SERVE_PROXY_USE_GRPC=1`` (the proxy calls replicas over gRPC);
- ``throughput``: ``RAY_SERVE_THROUGHPUT_OPTIMIZED=1`` (user code and router on the replica's
  main loop, buffered request logs, no log copy to stderr, direct ingress: the ingress
  replica runs its own HTTP server; a Python proxy stays on the head);
- ``haproxy``: ``RAY_SERVE_ENABLE_HA_PROXY=1`` (+ direct ingress): an HAProxy process on the
  port instead of Serve's Python proxy, forwarding to the replica's own HTTP server;
- ``haproxy+throughput``: both.

Besides HTTP, each mode also measures the direct handle path (the driver calling the ingress
deployment's ``predict_body`` over a ``DeploymentHandle``, batched), which skips HTTP entirely.

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
MODES: dict[str, dict[str, str]] = {
    "default": {},
    "throughput": {"RAY_SERVE_THROUGHPUT_OPTIMIZED": "1"},
    # throughput mode's two event-loop knobs alone, on Serve's usual proxy and topology
    "loops": {
        "RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD": "0",
        "RAY_SERVE_RUN_ROUTER_IN_SEPARATE_LOOP": "0",
    },
    # proxy → replica over gRPC instead of Ray actor calls
    "grpc": {"RAY_SERVE_PROXY_USE_GRPC": "1"},
    "haproxy": {"RAY_SERVE_ENABLE_HA_PROXY": "1"},
    "haproxy+throughput": {"RAY_SERVE_ENABLE_HA_PROXY": "1", "RAY_SERVE_THROUGHPUT_OPTIMIZED": "1"},
}


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


async def _measure(call, n: int, concurrency: int) -> dict[str, float]:
    """req/s and latency percentiles of ``n`` awaits of ``call()`` at most ``concurrency``
    at a time, after up to 10 untimed warm-up calls."""
    lat: list[float] = []
    sem = asyncio.Semaphore(concurrency)

    async def one():
        async with sem:
            t = time.perf_counter()
            await call()
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


async def load(url: str, body: bytes, n: int, concurrency: int) -> dict[str, float]:
    conn = aiohttp.TCPConnector(limit=concurrency)  # keep-alive connections, one per worker
    async with aiohttp.ClientSession(connector=conn) as s:

        async def post():
            async with s.post(url, data=body, headers={"Content-Type": "application/json"}) as r:
                await r.read()
                assert r.status == 200, r.status

        return await _measure(post, n, concurrency)


async def load_handle(handle, body: bytes, n: int, concurrency: int) -> dict[str, float]:
    """The same measure over a DeploymentHandle: no HTTP, no proxy."""

    async def call():
        status, _ = await handle.predict_body.remote(body)
        assert status == 200, status

    return await _measure(call, n, concurrency)


async def by_handle(handle, body: bytes, n: int) -> dict[int, dict[str, float]]:
    # one event loop for all levels: the handle's router may live on the caller's loop
    return {c: await load_handle(handle, body, n, c) for c in CONCURRENCY}


def serve_side(run_dir: str, body: bytes, n: int, mode: str) -> dict[str, dict[int, dict[str, float]]]:
    """Serve batched / unbatched over HTTP and batched over a handle, on this process's own
    embedded Ray; the mode's environment is already in ``os.environ`` (see :func:`mode_env`)."""
    import ray
    from ray import serve

    from raydl.serve.app import application
    from raydl.spec.serve import ServeSpec

    results: dict[str, dict[int, dict[str, float]]] = {}
    # one event loop, open until Serve is shut down: with the router on the caller's loop
    # (RAY_SERVE_RUN_ROUTER_IN_SEPARATE_LOOP=0) the handle lives on it
    loop = asyncio.new_event_loop()
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    try:
        for name, batching in (
            ("batched", {"max_batch_size": 32, "wait_s": 0.005}),
            ("unbatched", {"enabled": False}),
        ):
            spec = ServeSpec(num_cpus=0, batching=batching, max_ongoing_requests=64, max_queued_requests=-1)
            serve.run(application(run_dir, spec), name="bench", route_prefix="/")
            url = f"http://127.0.0.1:{port}/predict"
            _wait(url, body)
            by_c = {c: loop.run_until_complete(load(url, body, n, c)) for c in CONCURRENCY}
            results[f"serve {name} [{mode}]"] = by_c
            if name == "batched":
                handle = serve.get_app_handle("bench")
                results[f"handle batched [{mode}]"] = loop.run_until_complete(by_handle(handle, body, n))
            serve.delete("bench")
    finally:
        try:
            serve.shutdown()
        finally:
            ray.shutdown()
            loop.close()
    return results


def mode_env(mode: str, scratch: str) -> dict[str, str]:
    """The environment a mode's process (and so its Ray) starts with. HAProxy's files and
    its stats/metrics ports go to this run's own places (the machine may be shared); the
    scratch path stays short (HAProxy refuses socket paths past 97 characters)."""
    env = {**os.environ, **MODES[mode], "OMP_NUM_THREADS": "1"}
    if "RAY_SERVE_ENABLE_HA_PROXY" in MODES[mode]:
        env.update(
            RAY_SERVE_HAPROXY_CONFIG_FILE_LOC=f"{scratch}/haproxy.cfg",
            RAY_SERVE_HAPROXY_SOCKET_PATH=f"{scratch}/admin.sock",
            RAY_SERVE_HAPROXY_SERVER_STATE_BASE=scratch,
            RAY_SERVE_HAPROXY_SERVER_STATE_FILE=f"{scratch}/server-state",
            RAY_SERVE_HAPROXY_METRICS_SOCKET_PATH=f"{scratch}/metrics.sock",
            RAY_SERVE_HAPROXY_STATS_PORT=str(free_port()),
            RAY_SERVE_HAPROXY_METRICS_PORT=str(free_port()),
        )
    return env


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("run_dir")
    ap.add_argument("--requests", type=int, default=400)
    ap.add_argument("--out", default="serve_load.json")
    ap.add_argument("--modes", default="default", help=f"comma-separated, of {', '.join(MODES)}")
    ap.add_argument("--serve-mode", help=argparse.SUPPRESS)  # internal: one mode's process
    args = ap.parse_args()
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = set(modes) - set(MODES)
    if unknown:
        ap.error(f"unknown --modes {sorted(unknown)}; choose from {list(MODES)}")

    import sklearn.datasets

    from raydl.predict import Predictor

    shape = Predictor.from_run(args.run_dir).input_schema["fields"][0]["shape"]
    x = np.zeros(shape, np.float32)
    if list(shape[-2:]) == [8, 8]:
        x = sklearn.datasets.load_digits().images[0].reshape(shape)
    body = json.dumps({"x": x.tolist()}).encode()
    if args.serve_mode:  # one mode's process: its results as JSON to --out
        with open(args.out, "w") as f:
            json.dump(serve_side(args.run_dir, body, args.requests, args.serve_mode), f)
        return
    results: dict[str, dict[int, dict[str, float]]] = {}
    loads: dict[str, str] = {}

    # plain uvicorn in its own process (as a user would run it)
    port = free_port()
    code = (
        "import sys, uvicorn; sys.path.insert(0, 'benchmarks'); import serve_load; "
        f"uvicorn.run(serve_load.plain_app({args.run_dir!r}), host='127.0.0.1', port={port}, "
        "log_level='warning')"
    )
    loads["uvicorn"] = _loadavg()
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

    import tempfile

    failed: list[str] = []
    for mode in modes:
        with tempfile.TemporaryDirectory(prefix="sl", dir="/tmp") as scratch:
            out = f"{scratch}/results.json"
            loads[mode] = _loadavg()
            print(f"{mode}: load average before {loads[mode]}", flush=True)
            cmd = [sys.executable, __file__, args.run_dir, "--requests", str(args.requests)]
            done = subprocess.run([*cmd, "--serve-mode", mode, "--out", out], env=mode_env(mode, scratch))
            if done.returncode != 0:
                print(f"{mode}: failed (exit {done.returncode}); left out of the table", flush=True)
                failed.append(mode)
                continue
            with open(out) as f:
                results.update({k: {int(c): r for c, r in v.items()} for k, v in json.load(f).items()})

    print(f"load average before each: {loads}; now {_loadavg()}")
    head = ("server", "conc", "req/s", "p50 ms", "p95 ms", "p99 ms", "rps/uvicorn")
    print("{:32} {:>4} {:>8} {:>8} {:>8} {:>8} {:>12}".format(*head))
    for name, by_c in results.items():
        for c, r in by_c.items():
            ratio = r["rps"] / results["uvicorn"][c]["rps"]
            print(
                f"{name:32} {c:>4} {r['rps']:8.1f} {r['p50_ms']:8.2f} {r['p95_ms']:8.2f} "
                f"{r['p99_ms']:8.2f} {ratio:12.2f}"
            )
    for mode in [m for m in modes if m not in failed]:
        b, u = results[f"serve batched [{mode}]"][32]["rps"], results[f"serve unbatched [{mode}]"][32]["rps"]
        plain = results["uvicorn"]
        added = results[f"serve unbatched [{mode}]"][1]["p50_ms"] - plain[1]["p50_ms"]
        print(
            f"[{mode}] batched / unbatched at 32: {b / u:.2f}x; batched / uvicorn at 32: "
            f"{b / plain[32]['rps']:.2f}x; serve added p50 at 1: {added:.2f} ms"
        )
    with open(args.out, "w") as f:
        json.dump({"load_average_before": loads, "results": results}, f, indent=2)


def _loadavg() -> str:
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


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
