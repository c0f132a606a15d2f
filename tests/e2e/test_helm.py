"""The Helm chart helm/raydl with the real helm 3 binary (installed by `make setup`):
lint, render, and check every rendered object against KubeRay's CRDs and Kubernetes' own
schemas; and the chart and `raydl k8s render` agree on the cluster they describe."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml
from kubernetes.utils import parse_quantity

from raydl.cluster import kuberay
from raydl.spec import load_spec
from tests.k8s_schemas import validate

pytestmark = pytest.mark.e2e

CHART = Path(__file__).parents[2] / "helm" / "raydl"
CI_VALUES = sorted((CHART / "ci").glob("*.yaml"))


@pytest.fixture(scope="module")
def helm() -> str:
    # no skip: a missing helm is a broken setup (`make setup` installs it)
    found = shutil.which(
        "helm", path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    )
    assert found, "helm is not installed; run `make setup` (scripts/install_helm.py)"
    version = subprocess.run([found, "version", "--short"], capture_output=True, text=True, check=True).stdout
    assert version.startswith("v3."), version
    return found


def template(helm: str, *args: str) -> list[dict]:
    out = subprocess.run(
        [helm, "template", "rel", str(CHART), *args], capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stderr
    return [o for o in yaml.safe_load_all(out.stdout) if o]


def test_ci_values_files_exist():
    assert {p.name for p in CI_VALUES} >= {"cpu-values.yaml", "gpu-values.yaml", "serve-values.yaml"}


@pytest.mark.parametrize("values", CI_VALUES, ids=lambda p: p.name)
def test_lint_and_render_validate(helm, values):
    lint = subprocess.run(
        [helm, "lint", "--strict", str(CHART), "-f", str(values)], capture_output=True, text=True
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr
    objects = template(helm, "-f", str(values))
    for obj in objects:
        validate(obj)
    kinds = [o["kind"] for o in objects]
    assert kinds.count("RayCluster") == 1
    assert ("RayJob" in kinds) == (values.name == "cpu-values.yaml")
    assert ("RayService" in kinds) == (values.name == "serve-values.yaml")
    for obj in objects:
        assert obj.get("spec", {}).get("type") not in ("LoadBalancer", "NodePort")
        for template_ in _templates(obj):
            for c in template_["spec"]["containers"]:
                assert c["resources"]["requests"] and c["resources"]["limits"], c["name"]
                assert c["securityContext"]["runAsNonRoot"] is True


def _templates(obj):
    spec = obj.get("spec", {})
    clusters = (
        [spec] if obj["kind"] == "RayCluster" else [spec[k] for k in ("rayClusterConfig",) if k in spec]
    )
    out = [spec["submitterPodTemplate"]] if "submitterPodTemplate" in spec else []
    for c in clusters:
        assert c["headGroupSpec"]["serviceType"] == "ClusterIP"  # dashboard/job API not exposed
        out += [c["headGroupSpec"]["template"], *(g["template"] for g in c["workerGroupSpecs"])]
    return out


def test_gpu_values_render_gpu_groups(helm):
    (cluster,) = [
        o for o in template(helm, "-f", str(CHART / "ci" / "gpu-values.yaml")) if o["kind"] == "RayCluster"
    ]
    groups = {g["groupName"]: g for g in cluster["spec"]["workerGroupSpecs"]}
    gpu = groups["gpu-a100"]
    assert (gpu["minReplicas"], gpu["maxReplicas"]) == (0, 8)
    pod = gpu["template"]["spec"]
    assert pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    assert pod["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB"}
    assert "nvidia.com/gpu" not in groups["cpu"]["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert cluster["spec"]["enableInTreeAutoscaling"] is True
    env = pod["containers"][0]["env"]
    assert env[0]["valueFrom"]["secretKeyRef"] == {"name": "wandb", "key": "api-key", "optional": True}


@pytest.mark.parametrize(
    "bad, message",
    [
        ("head.cpu=true", "head.cpu"),
        ("workerGroups[0].max=many", "workerGroups.0.max"),
        ("workerGroups[0].gpus=1", "gpus"),
        ("job.enabled=yes", "job.enabled"),
        ("image.pullPolicy=Sometimes", "image.pullPolicy"),
        ("head.memory=lots", "head.memory"),
    ],
)
def test_values_schema_rejects_unknown_or_mistyped(helm, bad, message):
    out = subprocess.run(
        [
            helm,
            "template",
            "rel",
            str(CHART),
            "--set-string" if "=many" in bad or "lots" in bad else "--set",
            bad,
        ],
        capture_output=True,
        text=True,
    )
    assert out.returncode != 0
    assert "values don't meet the specifications of the schema" in out.stderr and message in out.stderr, (
        out.stderr
    )


def test_crd_schema_catches_a_wrong_field():
    obj = kuberay.render(load_spec(Path(__file__).parents[2] / "jobs" / "digits_cnn.yaml"))[1]
    obj["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]["minReplica"] = 1
    with pytest.raises(jsonschema.ValidationError, match="minReplica"):
        validate(obj)
    obj = kuberay.render(load_spec(Path(__file__).parents[2] / "jobs" / "digits_cnn.yaml"))[1]
    obj["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]["maxReplicas"] = "4"
    with pytest.raises(jsonschema.ValidationError):
        validate(obj)


def test_every_value_has_a_doc_comment_and_the_readme_table_is_current():
    out = subprocess.run(
        [sys.executable, str(CHART.parents[1] / "scripts" / "chart_docs.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    assert "| workerGroups |" in (CHART / "README.md").read_text()


def test_chart_and_render_agree_on_the_cluster(helm, tmp_path, repo_root):
    """The same spec, rendered by `raydl k8s render` and by the chart (with the values
    `raydl k8s values` gives), yields the same head and worker groups."""
    spec_file = tmp_path / "job.yaml"
    raw = yaml.safe_load(Path(repo_root, "jobs", "digits_cnn.yaml").read_text())
    raw["cluster"] = {
        "head": {"cpu": 2, "memory": "8Gi"},
        "wandb_secret": "wandb",
        "worker_groups": [
            {"name": "cpu", "min": 1, "max": 3, "cpu": 3.5, "memory": "6Gi"},
            {
                "name": "gpu",
                "min": 0,
                "max": 4,
                "gpu": 2,
                "cpu": 8,
                "memory": "30Gi",
                "node_selector": {"pool": "a100"},
                "tolerations": [{"key": "ml", "operator": "Exists"}],
            },
        ],
    }
    spec_file.write_text(yaml.safe_dump(raw))
    values = subprocess.run(
        [sys.executable, "-m", "raydl.cli", "k8s", "values", str(spec_file)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    (tmp_path / "values.yaml").write_text(values)
    chart = {o["kind"]: o for o in template(helm, "-f", str(tmp_path / "values.yaml"))}
    rendered = {o["kind"]: o for o in kuberay.render(load_spec(spec_file))}
    assert yaml.safe_load(chart["ConfigMap"]["data"]["job.yaml"]) == yaml.safe_load(values)["job"]["spec"]
    assert load_spec(spec_file) == _spec_of(chart["ConfigMap"], tmp_path)
    assert _shape(chart["RayCluster"]["spec"]) == _shape(rendered["RayJob"]["spec"]["rayClusterSpec"])
    assert len(_shape(chart["RayCluster"]["spec"])["workerGroupSpecs"]) == 2


def _spec_of(config_map, tmp_path):
    f = tmp_path / "from_chart.yaml"
    f.write_text(config_map["data"]["job.yaml"])
    return load_spec(f)


def _shape(cluster: dict) -> dict:
    """A cluster spec without names that differ by design (service account, ConfigMap name),
    quantities compared by value ("3500m" == "3.5")."""
    cluster = json.loads(json.dumps(cluster))
    for pod in [cluster["headGroupSpec"]["template"], *(g["template"] for g in cluster["workerGroupSpecs"])]:
        pod["spec"].pop("serviceAccountName", None)
        for v in pod["spec"].get("volumes", []):
            v["configMap"]["name"] = "spec"
        for c in pod["spec"]["containers"]:
            for part in ("requests", "limits"):
                c["resources"][part] = {k: str(parse_quantity(v)) for k, v in c["resources"][part].items()}
            c["ports"] = sorted(c.get("ports", []), key=lambda p: p["containerPort"])
    res = cluster["autoscalerOptions"]["resources"]
    for part in res:
        res[part] = {k: str(parse_quantity(v)) for k, v in res[part].items()}
    return cluster


def test_the_chart_serves_raydls_application(helm):
    """The chart's RayService runs the application raydl.serve.config describes: the same
    import path and build_app arguments, its serve: section a valid raydl ServeSpec."""
    from raydl.serve.config import build_args
    from raydl.spec.serve import ServeSpec

    values = yaml.safe_load((CHART / "ci" / "serve-values.yaml").read_text())["serve"]
    (service,) = [
        o for o in template(helm, "-f", str(CHART / "ci" / "serve-values.yaml")) if o["kind"] == "RayService"
    ]
    (app,) = yaml.safe_load(service["spec"]["serveConfigV2"])["applications"]
    assert app["import_path"] == "raydl.serve.app:build_app"
    spec = ServeSpec.model_validate(app["args"]["serve"])
    assert spec.autoscaling.max_replicas == values["maxReplicas"] == 4
    assert spec.batching.max_batch_size == 16 and spec.threshold == 0.6 and spec.route_prefix == "/digits"
    assert app["args"].keys() == build_args(spec, values["runDir"]).keys()
    assert app["args"]["run_dir"] == values["runDir"]
    # Serve's flags and its HAProxy ingress on every Ray container of the service, as
    # `raydl k8s render` puts them (raydl.serve.config.SERVICE_RAY_ENV)
    from raydl.serve.config import SERVICE_RAY_ENV

    cluster = service["spec"]["rayClusterConfig"]
    for group in [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]:
        env = {e["name"]: e.get("value") for e in group["template"]["spec"]["containers"][0]["env"]}
        assert SERVICE_RAY_ENV.items() <= env.items(), env
    assert spec.auth.token_env is None  # no serve.auth.secretName: no token asked for


def test_serve_auth_takes_the_token_from_the_secret_on_the_services_pods_only(helm):
    objects = template(
        helm, "-f", str(CHART / "ci" / "serve-values.yaml"), "--set", "serve.auth.secretName=digits-token"
    )
    for obj in objects:
        validate(obj)
    kinds = {o["kind"]: o for o in objects}
    (app,) = yaml.safe_load(kinds["RayService"]["spec"]["serveConfigV2"])["applications"]
    assert app["args"]["serve"]["auth"] == {"token_env": "RAYDL_SERVE_TOKEN"}
    cluster = kinds["RayService"]["spec"]["rayClusterConfig"]
    ref = {"name": "digits-token", "key": "token", "optional": False}
    for group in [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]:
        env = group["template"]["spec"]["containers"][0]["env"]
        assert {"name": "RAYDL_SERVE_TOKEN", "valueFrom": {"secretKeyRef": ref}} in env, env
    assert "RAYDL_SERVE_TOKEN" not in yaml.safe_dump(kinds["RayCluster"])  # the standalone cluster
    bad = subprocess.run(
        [helm, "template", "rel", str(CHART), "--set", "serve.auth.tokenEnv=MY-TOKEN"],
        capture_output=True,
        text=True,
    )
    assert bad.returncode != 0 and "serve.auth.tokenEnv" in bad.stderr, bad.stderr
