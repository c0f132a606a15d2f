"""A fault under load, measured: a steady, bounded HTTP load on a Serve endpoint while one of
its replica actors is killed for real (``ray.kill``), and what came of it — the share of
requests that failed for clients that do not retry, the requests lost by clients that retry
on 5xx and connection errors, and how long Serve took to replace the replica.

Called by ``tests/e2e/test_serve.py`` (which asserts what survived, never the times) and by
benchmark scripts, which print its report. Needs a driver connected to the Ray that runs
Serve (it finds and kills the replica, and reads ``serve.status()``).
"""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

#: the small digits job a replica is killed under (one epoch, in the driver): the app that
#: tests/e2e/test_serve.py and benchmarks/reliability.py's serve scenario both serve
TINY_DIGITS: dict[str, Any] = {
    "name": "digits",
    "data": {"source": {"type": "builtin", "name": "digits"}, "label": "target"},
    "model": {"arch": "cnn", "params": {"channels": [4, 8], "hidden": 16}},
    "train": {"workers": 1, "cpus_per_worker": 0.5, "epochs": 1, "batch_size": 64},
}

#: statuses a retrying client tries again: overload, a replica gone mid-request, a timeout
RETRYABLE = frozenset({500, 502, 503, 504})


@dataclass
class Clients:
    """What one group of clients saw: requests sent, first answers other than 200 (and their
    statuses; 0 is a connection error), and requests never answered 200 (lost)."""

    retry: bool
    sent: int = 0
    failed: int = 0
    lost: int = 0
    retries: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    answered_at: list[float] = field(default_factory=list, repr=False)  # monotonic, per 200
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def summary(self) -> dict[str, Any]:
        return {
            "retry": self.retry,
            "sent": self.sent,
            "failed": self.failed,
            "failed_share": self.failed / self.sent if self.sent else 0.0,
            "lost": self.lost,
            "retries": self.retries,
            "statuses": dict(self.statuses),
        }


def post_status(url: str, body: bytes, headers: dict[str, str] | None = None, timeout: float = 30) -> int:
    """One POST's HTTP status; 0 for a connection error or a timeout."""
    req = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": "application/json", **(headers or {})}
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            r.read()
            return int(r.status)
    except urllib.error.HTTPError as e:
        e.read()
        return int(e.code)
    except (OSError, urllib.error.URLError):
        return 0


def _client(
    url: str, body: bytes, clients: Clients, stop: threading.Event, pause_s: float, retry_for_s: float
) -> None:
    while not stop.is_set():
        first = status = post_status(url, body)
        retries, until, wait = 0, time.monotonic() + retry_for_s, 0.05
        while clients.retry and status in RETRYABLE | {0} and time.monotonic() < until:
            time.sleep(wait)  # backing off: 50 ms, doubled up to 1 s
            wait = min(wait * 2, 1.0)
            retries += 1
            status = post_status(url, body)
        with clients.lock:
            clients.sent += 1
            clients.retries += retries
            if first != 200:
                clients.failed += 1
                clients.statuses[first] += 1
            if status != 200:
                clients.lost += 1
            else:
                clients.answered_at.append(time.monotonic())
        time.sleep(pause_s)


def replicas(app: str, deployment: str) -> set[str]:
    """The live replica actors of a deployment, by actor name."""
    import ray

    # Serve names each replica actor SERVE_REPLICA::<app>#<deployment>#<id>, in its namespace
    prefix = f"SERVE_REPLICA::{app}#{deployment}#"
    named = ray.util.list_named_actors(all_namespaces=True)
    return {a["name"] for a in named if a["name"].startswith(prefix)}


def _healthy(app: str, deployment: str, count: int) -> bool:
    from ray import serve

    status = serve.status().applications.get(app)
    if status is None or deployment not in status.deployments:
        return False
    dep = status.deployments[deployment]
    return str(dep.status.value) == "HEALTHY" and dep.replica_states.get("RUNNING", 0) == count


def kill_replica_under_load(
    url: str,
    body: bytes,
    *,
    app: str,
    deployment: str,
    clients: int = 4,
    seconds: float = 10,
    kill_after_s: float = 2,
    pause_s: float = 0.02,
    retry_for_s: float = 60,
    recover_within_s: float = 120,
    after_s: float = 1,
) -> dict[str, Any]:
    """Send ``body`` to ``url`` from ``clients`` threads (half of them retrying; each sends
    one request at a time, ``pause_s`` apart) for ``seconds``; ``kill_after_s`` in, kill one
    replica of ``app``'s ``deployment`` with ``ray.kill`` (no restart of that actor: Serve's
    controller has to start a new one). The load goes on until ``seconds``, and at least
    ``after_s`` past the replacement; the wait for it until ``recover_within_s`` after the kill.

    Returns:
        ``fault`` (what was killed), ``replicas`` (before, after), ``replaced`` (a new replica
        id, the killed one gone, the deployment HEALTHY with as many RUNNING as before),
        ``recover_s`` (kill → replaced; None if it was not within ``recover_within_s``),
        and per group (``plain``, ``retrying``) what :class:`Clients` saw, with
        ``answered_after`` (its requests answered 200 once the replica was replaced).
    """
    import ray

    before = replicas(app, deployment)
    if not before:
        raise RuntimeError(f"no live replica of {app}/{deployment}")
    groups = [Clients(retry=i % 2 == 1) for i in range(clients)]
    stop = threading.Event()
    threads = [
        threading.Thread(target=_client, args=(url, body, g, stop, pause_s, retry_for_s), daemon=True)
        for g in groups
    ]
    start = time.monotonic()
    for t in threads:
        t.start()
    time.sleep(kill_after_s)
    victim = sorted(before)[0]
    ray.kill(ray.get_actor(victim, namespace="serve"), no_restart=True)
    killed_at = time.monotonic()
    recover_s: float | None = None
    after: set[str] = set()
    while time.monotonic() - killed_at < recover_within_s:
        after = replicas(app, deployment)
        if victim not in after and after - before and _healthy(app, deployment, len(before)):
            recover_s = time.monotonic() - killed_at
            break
        time.sleep(0.2)
    time.sleep(max(after_s, start + seconds - time.monotonic()))
    stop.set()
    for t in threads:
        t.join(retry_for_s + 60)

    def merged(retry: bool) -> dict[str, Any]:
        total = Clients(retry=retry)
        for g in groups:
            if g.retry == retry:
                total.sent += g.sent
                total.failed += g.failed
                total.lost += g.lost
                total.retries += g.retries
                total.statuses.update(g.statuses)
                total.answered_at += g.answered_at
        replaced_at = killed_at + recover_s if recover_s is not None else float("inf")
        return {**total.summary(), "answered_after": sum(t > replaced_at for t in total.answered_at)}

    return {
        "fault": f"ray.kill of replica {victim.rpartition('#')[2]} of {app}/{deployment}",
        "replicas": {"before": sorted(before), "after": sorted(after)},
        "replaced": recover_s is not None,
        "recover_s": recover_s,
        "plain": merged(False),
        "retrying": merged(True),
    }
