"""`raydl k8s render/apply/status`: manifests for every example job validate against
KubeRay's CRDs and Kubernetes' schemas; GPU groups and serve render as the spec says;
without a cluster, apply and status fail with one clear line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.k8s_schemas import validate

pytestmark = pytest.mark.e2e

REPO = Path(__file__).parents[2]
JOBS = sorted((REPO / "jobs").glob("*.yaml"))


def raydl(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "raydl.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=600,
    )


@pytest.mark.parametrize("job", JOBS, ids=lambda p: p.name)
def test_render_of_every_example_job_validates(job):
    out = raydl("k8s", "render", str(job))
    assert out.returncode == 0, out.stderr
    objects = [o for o in yaml.safe_load_all(out.stdout) if o]
    assert [o["kind"] for o in objects] == ["ConfigMap", "RayJob"]
    for obj in objects:
        validate(obj)
    config_map, job_ = objects
