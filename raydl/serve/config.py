"""The serve stage's application as Ray Serve's config file describes it — one place for
``raydl serve`` (on embedded Ray), ``raydl serve RUN_DIR --config`` (a file ``serve
deploy`` accepts) and the RayService ``raydl k8s render`` writes (its ``serveConfigV2``).
Light: no Ray import, so ``raydl k8s render`` stays quick."""

from __future__ import annotations

from typing import Any

from raydl.spec.serve import ServeSpec

IMPORT_PATH = "raydl.serve.app:build_app"
#: Ray Serve flags raydl runs Ray with: ``raydl serve`` sets them before it starts an embedded
#: Ray (a value already in the environment wins), and the rendered RayJob/RayService (and the
#: Helm chart) put them on every Ray container. Serve reads them when its controller, proxies
#: and replicas import ``ray/serve/_private/constants.py``, so they belong in the environment
#: Ray starts in (the raylet's), not in an application's ``runtime_env``; a cluster that is
#: joined keeps its own. Without Serve they do nothing. User code and a handle's router on
#: the replica's (and proxy's) one event loop, instead of a loop of their own each: raydl's
#: routes are ``async`` and run the model in a thread, so nothing blocks that loop; the proxy,
#: queue limits, timeouts, logs and metrics stay Serve's usual ones. What it is worth, and
#: why not ``RAY_SERVE_THROUGHPUT_OPTIMIZED``: benchmarks/README.md (serve_load.py).
RAY_ENV: dict[str, str] = {
    "RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD": "0",
    "RAY_SERVE_RUN_ROUTER_IN_SEPARATE_LOOP": "0",
}
#: The RayService's Ray containers add HAProxy ingress: an HAProxy process on each node's
#: HTTP port forwards straight to the replicas' own HTTP servers, instead of Serve's Python
#: proxy actor (on 2 cores: Serve's added p50 2.9 ms instead of 12.3 ms, and batched
#: req/s 0.78x plain uvicorn's instead of 0.24x; benchmarks/README.md, serve_load.py).
#: Safe there: a pod's interfaces, ports (HAProxy's stats on 8404, Prometheus on 9101) and
#: ``/tmp/haproxy-serve`` are its own; it answers KubeRay's ``/-/healthz`` and
#: ``/-/routes``; and raydl's 503 (a full queue, from the replica), 504 (the app's timeout),
#: 4xx and answers are the same under it (tests/e2e/test_serve.py, HAProxy). ``raydl serve``
#: on a laptop keeps Serve's proxy: HAProxy's frontends bind every interface on fixed ports.
SERVICE_RAY_ENV: dict[str, str] = {**RAY_ENV, "RAY_SERVE_ENABLE_HA_PROXY": "1"}
DEPLOYMENT = "Model"
DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 8000


def deployment_options(serve: ServeSpec) -> dict[str, Any]:
    """The model deployment's options (``@serve.deployment`` keywords, and the config
    file's ``deployments[]`` entry): a replica always holds at least one full batch."""
    auto = serve.autoscaling
    backpressure: dict[str, Any] = {"status_code": serve.overload_status}
    if serve.retry_after_s is not None:
        backpressure["retry_after_s"] = serve.retry_after_s
    return {
        "max_ongoing_requests": serve.ongoing_requests,
        "max_queued_requests": serve.max_queued_requests,
        "backpressure_config": backpressure,
        "autoscaling_config": {
            "min_replicas": auto.min_replicas,
            "initial_replicas": max(auto.min_replicas, 1),
            "max_replicas": auto.max_replicas,
            "target_ongoing_requests": auto.target_ongoing_requests,
            "upscale_delay_s": auto.upscale_delay_s,
            "downscale_delay_s": auto.downscale_delay_s,
        },
        "ray_actor_options": {"num_cpus": serve.num_cpus},
    }


def build_args(serve: ServeSpec, run_dir: str, job: str | None = None) -> dict[str, Any]:
    """What :func:`raydl.serve.app.build_app` is called with."""
    return {"run_dir": run_dir, "job": job, "serve": serve.model_dump(mode="json")}


def application(serve: ServeSpec, run_dir: str, *, name: str, job: str | None = None) -> dict[str, Any]:
    """One entry of the config file's ``applications``.

    Args:
        run_dir: a run directory, or a runs folder (its newest run of ``job``), as a local
            path or a URI — the RayService reads ``cluster.storage``.
    """
    return {
        "name": name,
        "route_prefix": serve.route_prefix,
        "import_path": IMPORT_PATH,
        "args": build_args(serve, run_dir, job),
        "deployments": [{"name": DEPLOYMENT, **deployment_options(serve)}],
    }


def http_options(serve: ServeSpec, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> dict[str, Any]:
    # Serve's own proxy timeout is a backstop past the app's (which answers 504 itself)
    return {"host": host, "port": port, "request_timeout_s": serve.request_timeout_s + 5}


def config_file(
    serve: ServeSpec,
    run_dir: str,
    *,
    name: str,
    job: str | None = None,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
) -> dict[str, Any]:
    """A Ray Serve config file (``serve deploy FILE``; a RayService's ``serveConfigV2``)."""
    return {
        "proxy_location": "EveryNode",
        "http_options": http_options(serve, host, port),
        "applications": [application(serve, run_dir, name=name, job=job)],
    }
