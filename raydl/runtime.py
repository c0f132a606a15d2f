"""Connecting to Ray: an embedded local instance sized to the machine, or a cluster."""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import socket
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import ray

from raydl import env
from raydl.errors import RaydlError
from raydl.spec import JobSpec

log = logging.getLogger(__name__)


def default_num_cpus() -> int:
    # Twice the cores as *logical* CPUs: Train workers reserve one each, and Ray Data's
    # read/map tasks must still find free CPUs or the pipeline stalls (seen on 2 cores).
    return 2 * (os.cpu_count() or 1)


def quiet_ray_data() -> None:
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    for name in ("ray.data", "ray.train", "ray.tune"):
        logging.getLogger(name).setLevel(logging.ERROR)


def _check_reachable(address: str, where: str, timeout_s: float = 5.0) -> None:
    """Fail fast on a ``host:port`` nobody listens on: ``ray.init`` would retry for minutes."""
    if "://" in address or address == "auto" or ":" not in address:
        return
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s):
            pass
    except (OSError, ValueError) as e:
        raise RaydlError(
            f"{where}: cannot connect to the Ray cluster at {address} ({e}); is it running? "
            "Leave it unset to run on an embedded local Ray"
        ) from None


class ClusterLost(RaydlError):
    """The Ray cluster went away under a running command (its head died): not the user's
    input, and not a bug of raydl's either."""

    exit_code = 1


def _lost_head(error: BaseException) -> str | None:
    """The head's GCS address when ``error`` came from Ray and the head no longer accepts
    connections; None otherwise (Ray answers: the error is something else)."""
    if type(error).__module__.split(".")[0] != "ray" or not ray.is_initialized():
        return None
    try:
        gcs = ray.get_runtime_context().gcs_address
        host, _, port = gcs.rpartition(":")
        with socket.create_connection((host.strip("[]"), int(port)), timeout=2.0):
            return None
    except (OSError, ValueError):
        return gcs
    except Exception:  # noqa: BLE001 - no runtime context: nothing to tell
        return None


def _use_token_auth_if_available() -> None:
    """Ray 2.60 clusters from ``ray start`` demand a token by default, but a driver that
    joins one sends it only in token mode (else: "Authentication token is missing").
    Ray's own rule for `ray start` — token mode when RAY_AUTH_MODE is unset and a token
    exists (~/.ray/auth_token, RAY_AUTH_TOKEN[_PATH]) — applies here too; it must refresh
    Ray's cached config, which is why Ray's helper is used and not just the variable."""
    try:
        from ray._private.authentication.authentication_token_setup import (
            maybe_enable_token_auth_if_token_available,
        )
    except ImportError:  # a Ray without token auth
        return
    # Ray logs a warning that token auth is on; a user who asked for nothing should not
    # see it on every command (it also broke `raydl submit`'s one-line errors)
    quiet = logging.getLogger(maybe_enable_token_auth_if_token_available.__module__)
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        maybe_enable_token_auth_if_token_available(warn_if_disabled=False)
    finally:
        quiet.setLevel(level)


def _import_all(names: Sequence[str]) -> None:
    for name in names:
        # a module that fails here fails again, with its own error, where it is used
        with contextlib.suppress(Exception):
            importlib.import_module(name)


@contextlib.contextmanager
def connect(
    spec: JobSpec, verbose: bool = False, *, meanwhile: Sequence[str] = ()
) -> Iterator[dict[str, float]]:
    """Use the Ray that is already initialized, join ``cluster.address``/``RAY_ADDRESS``,
    or start an embedded local Ray; shut down only what was started here.

    ``meanwhile``: modules to import on a second thread while Ray starts, done before
    this yields. ``ray.init`` mostly waits for the processes it starts, and an import
    keeps one core busy: `raydl run` imports torch and torchmetrics (4 s on 2 cores)
    alongside it. The modules must import no Ray, which the main thread is importing:
    two threads entering one package's circular imports may see it half-initialized.

    Yields the cluster's total resources.
    """
    started = False
    loading = threading.Thread(target=_import_all, args=(meanwhile,), name="raydl-imports", daemon=True)
    if meanwhile:
        loading.start()
    if not ray.is_initialized():
        address = spec.cluster.address or env.ray_address()
        # Quiet by default: Ray's start-up notes (auth token, dashboard) are not the
        # user's business on a laptop run; --verbose shows them and the workers' logs.
        kwargs: dict[str, Any] = dict(
            log_to_driver=verbose, logging_level=logging.INFO if verbose else logging.ERROR
        )
        if address:
            log.info("joining the Ray cluster at %s", address)
            _use_token_auth_if_available()
            where = "cluster.address" if spec.cluster.address else "RAY_ADDRESS"
            _check_reachable(address, where)
            try:
                ray.init(address=address, **kwargs)
            except ConnectionError as e:
                raise RaydlError(
                    f"{where}: cannot connect to the Ray cluster at {address} ({e}); is it "
                    "running? Leave it unset to run on an embedded local Ray"
                ) from e
        else:
            # Workers import user code (`model.arch: mymodels:build`) from where the user
            # runs raydl, as the driver does. The embedded Ray's processes inherit this
            # process's environment, so PYTHONPATH is set for the moment Ray starts, not
            # as the job's runtime_env: workers with a runtime_env of their own cannot be
            # the raylet's prestarted ones: the first tasks waited 1.2 s more for new ones,
            # and a cold data stage on 30,000 Fashion-MNIST rows took 8.2 s, not 5.8 s
            # (benchmarks/README.md, "The data stage's cold start").
            with env.environ(PYTHONPATH=env.python_path_with_cwd()):
                ray.init(
                    # a new local Ray even when a `ray start` cluster runs on this machine
                    # (with no address, ray.init would join it, and refuse num_cpus)
                    address="local",
                    num_cpus=spec.cluster.num_cpus or default_num_cpus(),
                    object_store_memory=env.object_store_bytes(),
                    include_dashboard=False,
                    **kwargs,
                )
        started = True
    quiet_ray_data()
    if meanwhile:
        loading.join()
    try:
        yield ray.cluster_resources()
    except RaydlError:
        raise  # already said in raydl's words (a ClusterLost from an inner connect, too)
    except Exception as e:
        head = _lost_head(e)
        if head is None:
            raise
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise ClusterLost(
            f"lost the Ray cluster: its head at {head} no longer answers ({type(e).__name__}: {first[:200]})"
        ) from e
    finally:
        if started:
            ray.shutdown()
