"""Every environment variable raydl reads, in one place."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator


def ray_address() -> str | None:
    """``RAY_ADDRESS``: the cluster to join (set by ``ray job submit`` for its entrypoint)."""
    return os.environ.get("RAY_ADDRESS") or None


def object_store_bytes() -> int:
    """``RAYDL_OBJECT_STORE_MB``: object store of an embedded Ray (default 1024 MiB)."""
    return int(os.environ.get("RAYDL_OBJECT_STORE_MB", "1024")) * 1024 * 1024


def runs_root() -> str:
    """``RAYDL_RUNS_DIR``: where run directories are created (default ./runs)."""
    return os.environ.get("RAYDL_RUNS_DIR", "runs")


def python_path_with_cwd() -> str:
    """``PYTHONPATH`` with the working directory first (for Ray workers on this machine)."""
    parts = [os.getcwd(), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    return os.pathsep.join(dict.fromkeys(parts))


@contextlib.contextmanager
def environ(**values: str) -> Iterator[None]:
    """These variables set in this process's environment inside the block (for the
    processes started there), as they were afterwards."""
    before = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def serve_token(name: str) -> str | None:
    """The bearer token in the variable ``serve.auth.token_env`` names (surrounding
    whitespace dropped: a Secret made from a file often ends in a newline); None when unset
    or empty."""
    return os.environ.get(name, "").strip() or None
