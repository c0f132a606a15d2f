"""`raydl k8s render/apply/status`: manifests for every example job validate against
KubeRay's CRDs and Kubernetes' schemas; GPU groups and serve render as the spec says;
without a cluster, apply and status fail with one clear line."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from raydl.cluster import kuberay
from raydl.errors import RaydlError
from raydl.spec import load_spec
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
    spec = job_["spec"]
    assert spec["entrypoint"] == "raydl run /home/ray/raydl/job.yaml"
    cluster = spec["rayClusterSpec"]
    assert cluster["enableInTreeAutoscaling"] is True
    assert cluster["headGroupSpec"]["serviceType"] == "ClusterIP"
    head = cluster["headGroupSpec"]["template"]["spec"]
    assert head["volumes"][0]["configMap"]["name"] == config_map["metadata"]["name"]
    # the job spec travels whole: the ConfigMap holds the validated spec of this file
    rendered = yaml.safe_load(config_map["data"]["job.yaml"])
    assert rendered["name"] == yaml.safe_load(job.read_text())["name"]
    assert rendered["train"] == load_spec(job, local_paths=False).model_dump(mode="json")["train"]


def test_gpu_groups_serve_and_overrides(tmp_path):
    job = tmp_path / "gpu.yaml"
    raw = yaml.safe_load((REPO / "jobs" / "digits_cnn.yaml").read_text())
    raw["serve"] = {
        "route_prefix": "/digits",
        "autoscaling": {"min_replicas": 1, "max_replicas": 3},
        "auth": {"token_env": "RAYDL_SERVE_TOKEN", "secret": "digits-serve-token"},
    }
    raw["cluster"] = {
        "storage": "s3://bucket/runs",
        "worker_groups": [
            {"name": "cpu", "min": 0, "max": 4, "cpu": 4, "memory": "8Gi"},
            {
                "name": "gpu-a100",
                "min": 1,
                "max": 8,
                "gpu": 2,
                "cpu": 16,
                "memory": "64Gi",
                "node_selector": {"pool": "a100"},
                "tolerations": [
                    {"key": "dedicated", "operator": "Equal", "value": "ml", "effect": "NoSchedule"}
                ],
            },
        ],
    }
    job.write_text(yaml.safe_dump(raw))
    # a W&B key in the environment that renders must not copy into a manifest
    planted = "plantedwandbkey0123456789abcdef01234567"
    out = raydl(
        "k8s", "render", str(job), "cluster.image=registry.example/raydl:2.60.0-gpu", WANDB_API_KEY=planted
    )
    assert out.returncode == 0, out.stderr
    assert planted not in out.stdout + out.stderr
    objects = {o["kind"]: o for o in yaml.safe_load_all(out.stdout) if o}
    assert set(objects) == {"ConfigMap", "RayJob", "RayService"}
    for obj in objects.values():
        validate(obj)
    cluster = objects["RayJob"]["spec"]["rayClusterSpec"]
    assert cluster["rayVersion"] == "2.60.0"
    cpu, gpu = cluster["workerGroupSpecs"]
    shape = (gpu["groupName"], gpu["minReplicas"], gpu["maxReplicas"], gpu["replicas"])
    assert shape == ("gpu-a100", 1, 8, 1)
    pod = gpu["template"]["spec"]
    limits = pod["containers"][0]["resources"]["limits"]
    assert limits == {"cpu": "16", "memory": "64Gi", "nvidia.com/gpu": "2"}
    assert pod["containers"][0]["image"] == "registry.example/raydl:2.60.0-gpu"
    assert pod["nodeSelector"] == {"pool": "a100"}
    assert pod["tolerations"][0] == {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    assert pod["tolerations"][1]["key"] == "dedicated"
    assert "nvidia.com/gpu" not in cpu["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert "tolerations" not in cpu["template"]["spec"]
    (app,) = yaml.safe_load(objects["RayService"]["spec"]["serveConfigV2"])["applications"]
    assert app["route_prefix"] == "/digits" and app["import_path"] == "raydl.serve.app:build_app"
    assert app["deployments"][0]["autoscaling_config"]["max_replicas"] == 3
    # the service's cluster is the job's, plus the serve endpoint's token (serve.auth) and
    # Serve's HAProxy ingress
    service = objects["RayService"]["spec"]["rayClusterConfig"]
    assert _without_env(service, "RAYDL_SERVE_TOKEN", "RAY_SERVE_ENABLE_HA_PROXY") == cluster
    # Serve's flags (read where Ray starts) are on the service's head and every worker
    # container; the job's cluster has no HAProxy (it serves nothing)
    from raydl.serve.config import RAY_ENV, SERVICE_RAY_ENV

    pods = [service["headGroupSpec"], *service["workerGroupSpecs"]]
    for pod in pods:
        env = {e["name"]: e.get("value") for e in pod["template"]["spec"]["containers"][0]["env"]}
        assert SERVICE_RAY_ENV.items() <= env.items(), env
    for pod in [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]:
        env = {e["name"]: e.get("value") for e in pod["template"]["spec"]["containers"][0]["env"]}
        assert RAY_ENV.items() <= env.items() and "RAY_SERVE_ENABLE_HA_PROXY" not in env, env
    assert SERVICE_RAY_ENV == {
        "RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD": "0",
        "RAY_SERVE_RUN_ROUTER_IN_SEPARATE_LOOP": "0",
        "RAY_SERVE_ENABLE_HA_PROXY": "1",
    }
    # serve.auth: the token comes from the Secret on the service's pods, and is written nowhere
    assert app["args"]["serve"]["auth"] == {
        "token_env": "RAYDL_SERVE_TOKEN",
        "secret": "digits-serve-token",
        "secret_key": "token",
    }
    for pod in pods:
        (token,) = [e for e in pod["template"]["spec"]["containers"][0]["env"] if "TOKEN" in e["name"]]
        assert token == {
            "name": "RAYDL_SERVE_TOKEN",
            "valueFrom": {"secretKeyRef": {"name": "digits-serve-token", "key": "token", "optional": False}},
        }
    assert "RAYDL_SERVE_TOKEN" not in yaml.safe_dump(objects["RayJob"])  # training has no use for it


def _without_env(cluster: dict, *names: str) -> dict:
    cluster = copy.deepcopy(cluster)
    for group in [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]:
        container = group["template"]["spec"]["containers"][0]
        container["env"] = [e for e in container["env"] if e["name"] not in names]
    return cluster


def test_a_service_asking_for_a_token_must_name_its_secret(tmp_path):
    raw = yaml.safe_load((REPO / "jobs" / "digits_cnn.yaml").read_text())
    raw["serve"] = {"auth": {"token_env": "RAYDL_SERVE_TOKEN"}}
    raw["cluster"] = {"storage": "s3://bucket/runs"}
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(RaydlError, match=r"^serve.auth.secret: the RayService sets RAYDL_SERVE_TOKEN from"):
        kuberay.render(load_spec(tmp_path / "job.yaml"))


def test_bad_worker_group_is_a_spec_error(tmp_path):
    job = tmp_path / "bad.yaml"
    raw = yaml.safe_load((REPO / "jobs" / "digits_cnn.yaml").read_text())
    raw["cluster"] = {"worker_groups": [{"name": "GPU_big", "min": 3, "max": 1, "memory": "lots"}]}
    job.write_text(yaml.safe_dump(raw))
    out = raydl("k8s", "render", str(job))
    assert out.returncode == 2 and "Traceback" not in out.stderr
    lines = out.stderr.strip().splitlines()
    assert any(line.startswith("error: cluster.worker_groups[0].name") for line in lines), lines
    assert any(line.startswith("error: cluster.worker_groups[0].memory") for line in lines), lines


@pytest.mark.parametrize("command", ["apply", "status"])
def test_apply_and_status_without_a_cluster_fail_clearly(tmp_path, command):
    out = raydl(
        "k8s",
        command,
        str(REPO / "jobs" / "digits_cnn.yaml"),
        KUBECONFIG=str(tmp_path / "missing-kubeconfig"),
        HOME=str(tmp_path),
    )
    assert out.returncode == 2 and "Traceback" not in out.stderr
    (line,) = out.stderr.strip().splitlines()
    assert line.startswith("error: no Kubernetes cluster configured"), line


def test_apply_to_an_unreachable_api_server_fails_clearly(tmp_path):
    kubeconfig = tmp_path / "config"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "dead",
                "clusters": [{"name": "dead", "cluster": {"server": "https://127.0.0.1:1"}}],
                "contexts": [{"name": "dead", "context": {"cluster": "dead", "user": "u"}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
            }
        )
    )
    out = raydl("k8s", "apply", str(REPO / "jobs" / "digits_cnn.yaml"), KUBECONFIG=str(kubeconfig))
    assert out.returncode == 2 and "Traceback" not in out.stderr
    (line,) = out.stderr.strip().splitlines()
    assert "cannot reach the Kubernetes API server" in line, line
