"""``raydl serve RUN_DIR``: the application on the Ray that is connected (embedded, or the
cluster the run's spec names), its HTTP proxy on ``host:port``."""

from __future__ import annotations

import time

from ray import serve

from raydl.serve.app import application
from raydl.serve.config import http_options
from raydl.spec.serve import ServeSpec


def start(run_dir: str, spec: ServeSpec, *, name: str, host: str, port: int, job: str | None = None) -> str:
    """Deploy the application and return its URL once its replicas are up."""
    # Serve's proxy binds where http_options says; 127.0.0.1 unless asked (serve build writes 0.0.0.0)
    serve.start(http_options=http_options(spec, host, port))
    serve.run(application(run_dir, spec, job=job), name=name, route_prefix=spec.route_prefix)
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    return f"http://{shown}:{port}{spec.route_prefix.rstrip('/')}"


def wait_forever(joined: bool) -> None:
    """Until Ctrl-C. On a cluster that was joined (``joined``), Serve is then shut down, so
    the application leaves it. On an embedded Ray it is not: the caller's ``ray.shutdown()``
    ends Serve with the rest of that Ray at once, where Serve's own graceful shutdown waits up
    to 30 s on its controller (in CI a Ctrl-C once took more than 60 s to exit)."""
    try:
        while True:
            time.sleep(1)
    finally:
        if joined:
            serve.shutdown()
