"""Submitting a job spec to a running Ray cluster with Ray's Job Submission SDK.

The spec (with overrides applied) and the user's code travel as the job's runtime
environment (``working_dir``, minus ``excludes``; ``pip`` requirements when given); the
entrypoint is ``raydl run`` on the uploaded spec, so the cluster's Python needs raydl
(a Ray image with raydl installed, or ``pip`` in the runtime env).
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from raydl.errors import RaydlError
from raydl.spec import JobSpec

EXCLUDES = [".venv", ".git", "runs", "__pycache__", "*.pyc", ".pytest_cache", ".ruff_cache", ".mypy_cache"]
SPEC_NAME = ".raydl-job.yaml"  # written into the uploaded working_dir
NO_AGENT = "No available agent to submit job"  # Ray's job API, while the head's agent starts
AGENT_WAIT_S = 180


class JobFailed(RaydlError):
    exit_code = 1


def use_token_auth() -> None:
    """Ray 2.60 clusters from ``ray start`` demand a token on the job API, but the SDK only
    sends one in token mode: a user's first submit would fail with "Missing authentication
    token". Use token mode when a token is at hand (~/.ray/auth_token, RAY_AUTH_TOKEN[_PATH])
    and RAY_AUTH_MODE is unset. Ray's helper sets the variable *and* refreshes Ray's cached
    config; setting the variable alone is not seen once that config was read."""
    from raydl.runtime import _use_token_auth_if_available

    _use_token_auth_if_available()


def client(address: str) -> Any:
    """A JobSubmissionClient for ``address`` (``http://HEAD:8265``).

    Raises:
        RaydlError: nobody answers there, or the cluster refuses our credentials.
    """
    from ray.job_submission import JobSubmissionClient

    use_token_auth()
    try:
        return JobSubmissionClient(address)
    except Exception as e:  # the SDK raises ConnectionError/RuntimeError/auth errors
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        if "authentication" in first.lower():
            raise RaydlError(
                f"--address: the Ray cluster at {address} requires an auth token ({first}); copy "
                "the head's ~/.ray/auth_token to this machine or set RAY_AUTH_TOKEN "
                "(`ray get-auth-token` on the head prints it)"
            ) from None
        raise RaydlError(
            f"--address: cannot reach the Ray job API at {address} ({first}); is the head running "
            "and its dashboard port (8265) reachable?"
        ) from None


@contextmanager
def staged_working_dir(working_dir: Path, spec: JobSpec) -> Iterator[Path]:
    """``working_dir`` with the (overridden) spec added as ``.raydl-job.yaml``: a copy, so the
    user's folder is not touched."""
    if not working_dir.is_dir():
        raise RaydlError(f"--working-dir: {working_dir} is not a directory")
    with tempfile.TemporaryDirectory(prefix="raydl-submit-") as tmp:
        staged = Path(tmp) / "wd"
        shutil.copytree(working_dir, staged, ignore=shutil.ignore_patterns(*EXCLUDES), symlinks=True)
        (staged / SPEC_NAME).write_text(spec.to_yaml())
        yield staged


def runtime_env(working_dir: Path, requirements: Path | None) -> dict[str, Any]:
    env: dict[str, Any] = {"working_dir": str(working_dir), "excludes": list(EXCLUDES)}
    if requirements is not None:
        if not requirements.is_file():
            raise RaydlError(f"--requirements: no such file {requirements}")
        env["pip"] = [
            line.strip()
            for line in requirements.read_text().splitlines()
            if line.strip() and not line.startswith("#")
        ]
    return env


def submit(
    spec: JobSpec,
    address: str,
    *,
    working_dir: Path,
    requirements: Path | None = None,
    verbose: bool = False,
) -> str:
    """Submit ``raydl run`` on ``spec`` and return the job id."""
    jobs = client(address)
    entrypoint = f"raydl run {SPEC_NAME}" + (" --verbose" if verbose else "")
    with staged_working_dir(working_dir, spec) as staged:
        env = runtime_env(staged, requirements)
        deadline = time.monotonic() + AGENT_WAIT_S
        while True:
            try:
                return jobs.submit_job(
                    entrypoint=entrypoint, runtime_env=env, metadata={"raydl_job": spec.name}
                )
            except Exception as e:
                # A head that has just started answers before its job agent is up, and Ray's
                # job API waits only 10 s for it: wait longer for a young cluster.
                if NO_AGENT in str(e) and time.monotonic() < deadline:
                    time.sleep(5)
                    continue
                raise RaydlError(f"submit: the cluster refused the job ({_first_line(e)})") from None


def _first_line(e: Exception) -> str:
    text = str(e).strip()
    return text.splitlines()[-1] if text else type(e).__name__


def follow(address: str, job_id: str, write: Callable[[str], Any]) -> str:
    """Stream the job's logs until it ends; return its final status."""
    jobs = client(address)

    async def tail() -> None:
        async for chunk in jobs.tail_job_logs(job_id):
            write(chunk)

    asyncio.run(tail())
    # the log stream closes as the job ends; the status may lag a moment behind
    for _ in range(60):
        status = str(jobs.get_job_status(job_id).value)
        if status in ("SUCCEEDED", "FAILED", "STOPPED"):
            return status
        time.sleep(0.5)
    return status


def outcome(address: str, job_id: str) -> tuple[str, str]:
    """(status, message) of a job."""
    info = client(address).get_job_info(job_id)
    return str(info.status.value), info.message or ""


def status(address: str, job_id: str) -> dict[str, Any]:
    jobs = client(address)
    try:
        info = jobs.get_job_info(job_id)
    except Exception as e:
        raise RaydlError(f"{job_id}: no such job at {address} ({_first_line(e)})") from None
    return {
        "job_id": job_id,
        "status": str(info.status.value),
        "message": info.message,
        "entrypoint": info.entrypoint,
        "start_time": info.start_time,
        "end_time": info.end_time,
        "metadata": info.metadata,
    }


def logs(address: str, job_id: str) -> str:
    try:
        return client(address).get_job_logs(job_id)
    except Exception as e:
        raise RaydlError(f"{job_id}: no such job at {address} ({_first_line(e)})") from None


def stop(address: str, job_id: str) -> bool:
    try:
        return bool(client(address).stop_job(job_id))
    except Exception as e:
        raise RaydlError(f"{job_id}: no such job at {address} ({_first_line(e)})") from None


def list_jobs(address: str) -> list[dict[str, Any]]:
    return [
        {
            "job_id": j.submission_id or j.job_id,
            "status": str(j.status.value),
            "entrypoint": j.entrypoint,
            "raydl_job": (j.metadata or {}).get("raydl_job", ""),
        }
        for j in client(address).list_jobs()
    ]
