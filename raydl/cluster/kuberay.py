"""KubeRay manifests from a job spec: a RayJob (its own RayCluster runs ``raydl run``) and,
for a ``serve:`` section, a RayService.

The cluster contract — what a head group and a worker group look like — is defined once
here (:func:`head_group`, :func:`worker_group`) and mirrored by the Helm chart
``helm/raydl``; ``tests/e2e/test_helm.py`` renders both from the same values and compares
them. Pod templates are built with the ``kubernetes`` client's typed V1 models and turned
into plain dicts by ``ApiClient().sanitize_for_serialization``. Creating them in a
cluster and reading their status is :mod:`raydl.cluster.kube_client`'s job.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any

import yaml
from kubernetes import client as k8s

from raydl.errors import RaydlError
from raydl.serve import config as serve_app
from raydl.spec import JobSpec, WorkerGroupSpec

GROUP, VERSION = "ray.io", "v1"
API_VERSION = f"{GROUP}/{VERSION}"
PLURALS = {"RayJob": "rayjobs", "RayService": "rayservices", "RayCluster": "rayclusters"}
SPEC_DIR = "/home/ray/raydl"  # where the job spec's ConfigMap is mounted on the head
SPEC_FILE = "job.yaml"
RAY_UID = 1000  # the `ray` user of the rayproject/ray images
GPU_RESOURCE = "nvidia.com/gpu"
GPU_TOLERATION = {"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}
SERVE_IMPORT_PATH = serve_app.IMPORT_PATH
AUTOSCALER_RESOURCES = {"cpu": "500m", "memory": "512Mi"}


def _sanitize(obj: Any) -> Any:
    return k8s.ApiClient().sanitize_for_serialization(obj)


def _security_context() -> k8s.V1SecurityContext:
    return k8s.V1SecurityContext(
        run_as_non_root=True,
        run_as_user=RAY_UID,
        allow_privilege_escalation=False,
        capabilities=k8s.V1Capabilities(drop=["ALL"]),
    )


def _resources(cpu: float | str, memory: str, gpu: int = 0) -> k8s.V1ResourceRequirements:
    # requests == limits: Ray reads its CPUs/GPUs/memory from the limits, and a pod that
    # gets what it asked for is not throttled or evicted first.
    amounts: dict[str, str] = {"cpu": _cpu(cpu), "memory": memory}
    if gpu:
        amounts[GPU_RESOURCE] = str(gpu)
    return k8s.V1ResourceRequirements(requests=dict(amounts), limits=dict(amounts))


def _cpu(cpu: float | str) -> str:
    if isinstance(cpu, str):
        return cpu
    return str(int(cpu)) if float(cpu).is_integer() else f"{int(round(cpu * 1000))}m"


def _secret_env(name: str, secret: str, key: str, *, optional: bool) -> k8s.V1EnvVar:
    ref = k8s.V1SecretKeySelector(name=secret, key=key, optional=optional)
    return k8s.V1EnvVar(name=name, value_from=k8s.V1EnvVarSource(secret_key_ref=ref))


def _env(
    wandb_secret: str | None,
    wandb_key: str,
    serve_token: tuple[str, str, str] | None = None,
    ray_env: dict[str, str] = serve_app.RAY_ENV,
) -> list[k8s.V1EnvVar]:
    # Ray Serve's flags after the keys (raydl.serve.config.RAY_ENV, the RayService's
    # SERVICE_RAY_ENV: read where Ray starts, so on the container; inert without Serve), on
    # every Ray pod as the Helm chart puts them
    env = [k8s.V1EnvVar(name=k, value=v) for k, v in ray_env.items()]
    if serve_token:  # serve.auth: the replicas read the bearer token from it; never optional
        variable, secret, key = serve_token
        env.insert(0, _secret_env(variable, secret, key, optional=False))
    if wandb_secret:
        env.insert(0, _secret_env("WANDB_API_KEY", wandb_secret, wandb_key, optional=True))
    return env


def pod_template(
    *,
    container: str,
    image: str,
    cpu: float | str,
    memory: str,
    gpu: int = 0,
    node_selector: dict[str, str] | None = None,
    tolerations: list[dict[str, Any]] | None = None,
    ports: Sequence[tuple[str, int]] = (),
    spec_config_map: str | None = None,
    wandb_secret: str | None = None,
    wandb_key: str = "api-key",
    serve_token: tuple[str, str, str] | None = None,
    ray_env: dict[str, str] = serve_app.RAY_ENV,
    service_account: str | None = None,
) -> dict[str, Any]:
    """A Ray pod: one container, non-root, requests == limits, GPU toleration when it has GPUs.

    Args:
        serve_token: (variable, Secret, key): the serve endpoint's bearer token, set from the
            Secret (``valueFrom.secretKeyRef``; the token is never in the manifest).
    """
    mounts, volumes = [], []
    if spec_config_map:
        mounts.append(k8s.V1VolumeMount(name="job-spec", mount_path=SPEC_DIR, read_only=True))
        volumes.append(
            k8s.V1Volume(name="job-spec", config_map=k8s.V1ConfigMapVolumeSource(name=spec_config_map))
        )
    tolerations = list(tolerations or [])
    if gpu and GPU_TOLERATION not in tolerations:
        tolerations.insert(0, GPU_TOLERATION)
    pod = k8s.V1PodTemplateSpec(
        spec=k8s.V1PodSpec(
            service_account_name=service_account,
            node_selector=dict(node_selector) if node_selector else None,
            tolerations=[k8s.V1Toleration(**_snake(t)) for t in tolerations] or None,
            volumes=volumes or None,
            containers=[
                k8s.V1Container(
                    name=container,
                    image=image,
                    image_pull_policy="IfNotPresent",
                    resources=_resources(cpu, memory, gpu),
                    security_context=_security_context(),
                    ports=[k8s.V1ContainerPort(name=n, container_port=p) for n, p in ports] or None,
                    volume_mounts=mounts or None,
                    env=_env(wandb_secret, wandb_key, serve_token, ray_env) or None,
                )
            ],
        )
    )
    return _sanitize(pod)


def _snake(toleration: dict[str, Any]) -> dict[str, Any]:
    names = {"tolerationSeconds": "toleration_seconds"}
    return {names.get(k, k): v for k, v in toleration.items()}


HEAD_PORTS = [("gcs", 6379), ("dashboard", 8265), ("client", 10001), ("serve", 8000)]


def head_group(image: str, cpu: float | str, memory: str, **pod: Any) -> dict[str, Any]:
    """The head group: dashboard and job API on a ClusterIP service only (not exposed);
    ``num-cpus: 0`` keeps training off the head so it stays responsive."""
    return {
        "serviceType": "ClusterIP",
        "rayStartParams": {"dashboard-host": "0.0.0.0", "num-cpus": "0"},
        "template": pod_template(
            container="ray-head", image=image, cpu=cpu, memory=memory, ports=HEAD_PORTS, **pod
        ),
    }


def worker_group(group: WorkerGroupSpec, image: str, **pod: Any) -> dict[str, Any]:
    """A worker group the autoscaler scales between ``min`` and ``max`` replicas."""
    return {
        "groupName": group.name,
        "replicas": group.min,
        "minReplicas": group.min,
        "maxReplicas": group.max,
        "rayStartParams": {},
        "template": pod_template(
            container="ray-worker",
            image=image,
            cpu=group.cpu,
            memory=group.memory,
            gpu=group.gpu,
            node_selector=group.node_selector,
            tolerations=group.tolerations,
            **pod,
        ),
    }


def default_worker_groups(spec: JobSpec) -> list[WorkerGroupSpec]:
    """``cluster.worker_groups``, or one CPU group sized for ``train.workers``."""
    if spec.cluster.worker_groups:
        return list(spec.cluster.worker_groups)
    n = spec.train.workers
    return [
        WorkerGroupSpec(
            name="gpu" if spec.train.use_gpu else "cpu",
            min=n,
            max=n,
            gpu=1 if spec.train.use_gpu else 0,
            cpu=max(1.0, spec.train.cpus_per_worker) + 1,  # room for Ray Data next to the worker
        )
    ]


def cluster_spec(
    spec: JobSpec, *, name: str, spec_config_map: str | None, service: bool = False
) -> dict[str, Any]:
    """A RayCluster spec (head + worker groups, in-tree autoscaling) for ``spec``; for the
    RayService's cluster (``service``), ``serve.auth``'s token from its Secret and Serve's
    HAProxy ingress (``SERVICE_RAY_ENV``)."""
    image = spec.cluster.image
    pod: dict[str, Any] = {"spec_config_map": spec_config_map}
    if service:
        pod["ray_env"] = serve_app.SERVICE_RAY_ENV
    if spec.cluster.wandb_secret:
        pod["wandb_secret"] = spec.cluster.wandb_secret
    auth = spec.serve.auth if spec.serve is not None else None
    if service and auth is not None and auth.token_env and auth.secret:
        pod["serve_token"] = (auth.token_env, auth.secret, auth.secret_key)
    return {
        "rayVersion": ray_version(image),
        "enableInTreeAutoscaling": True,
        # Ray 2.60 wants a token on the job API; KubeRay makes one and hands it to every pod
        "authOptions": {"mode": "token"},
        "autoscalerOptions": {
            "upscalingMode": "Default",
            "idleTimeoutSeconds": 60,
            "resources": {"requests": dict(AUTOSCALER_RESOURCES), "limits": dict(AUTOSCALER_RESOURCES)},
            "securityContext": _sanitize(_security_context()),
        },
        "headGroupSpec": head_group(image, spec.cluster.head.cpu, spec.cluster.head.memory, **pod),
        "workerGroupSpecs": [worker_group(g, image, **pod) for g in default_worker_groups(spec)],
    }


def helm_values(spec: JobSpec) -> dict[str, Any]:
    """Values for the ``helm/raydl`` chart that give the cluster :func:`cluster_spec` renders,
    with a RayJob running ``spec``."""
    repository, _, tag = spec.cluster.image.rpartition(":")
    groups = [
        {
            "name": g.name,
            "min": g.min,
            "max": g.max,
            "gpu": g.gpu,
            "cpu": _cpu(g.cpu),
            "memory": g.memory,
            "nodeSelector": dict(g.node_selector),
            "tolerations": list(g.tolerations),
        }
        for g in default_worker_groups(spec)
    ]
    return {
        "image": {"repository": repository, "tag": tag, "pullPolicy": "IfNotPresent"},
        "rayVersion": ray_version(spec.cluster.image),
        "head": {"cpu": _cpu(spec.cluster.head.cpu), "memory": spec.cluster.head.memory},
        "workerGroups": groups,
        "wandb": {"secretName": spec.cluster.wandb_secret or "", "secretKey": "api-key"},
        "job": {"enabled": True, "spec": spec.model_dump(mode="json", exclude_unset=True)},
    }


def ray_version(image: str) -> str:
    """``2.60.0`` from ``rayproject/ray:2.60.0-py311``; the installed Ray's otherwise."""
    tag = image.rpartition(":")[2].split("-")[0]
    if tag and tag[0].isdigit():
        return tag
    import ray

    return ray.__version__


def _k8s_name(spec: JobSpec) -> str:
    name = "".join(c if c.isalnum() else "-" for c in spec.name.lower()).strip("-")
    return f"raydl-{name}"[:50].rstrip("-")


def _labels(spec: JobSpec) -> dict[str, str]:
    return {"app.kubernetes.io/name": "raydl", "app.kubernetes.io/instance": _k8s_name(spec)}


def render(spec: JobSpec, namespace: str | None = None) -> list[dict[str, Any]]:
    """ConfigMap (the job spec) + RayJob running ``raydl run`` on it (+ RayService with ``serve:``)."""
    name = _k8s_name(spec)
    meta = {"name": name, "labels": _labels(spec)}
    if namespace:
        meta["namespace"] = namespace
    config_map = _sanitize(
        k8s.V1ConfigMap(
            api_version="v1",
            kind="ConfigMap",
            metadata=k8s.V1ObjectMeta(name=f"{name}-spec", namespace=namespace, labels=_labels(spec)),
            data={SPEC_FILE: spec.to_yaml()},
        )
    )
    entrypoint = f"raydl run {SPEC_DIR}/{SPEC_FILE}"  # the run dir goes to cluster.storage
    objects = [
        config_map,
        {
            "apiVersion": API_VERSION,
            "kind": "RayJob",
            "metadata": dict(meta),
            "spec": {
                "entrypoint": entrypoint,
                "shutdownAfterJobFinishes": True,
                "ttlSecondsAfterFinished": 600,
                "rayClusterSpec": cluster_spec(spec, name=name, spec_config_map=f"{name}-spec"),
            },
        },
    ]
    if spec.serve is not None:
        objects.append(render_service(spec, meta, f"{name}-spec"))
    return objects


def serve_config(spec: JobSpec) -> dict[str, Any]:
    """Ray Serve's config (``serveConfigV2``) for the ``serve:`` section: the same
    application ``raydl serve RUN_DIR --config`` writes (:mod:`raydl.serve.config`), serving
    the newest run of the job under ``cluster.storage``.

    Raises:
        RaydlError: no ``cluster.storage`` (the service would have no run to read), or
            ``serve.auth.token_env`` without ``serve.auth.secret`` (no token to read).
    """
    serve = spec.serve
    assert serve is not None
    if not spec.cluster.storage:
        raise RaydlError(
            "cluster.storage: a RayService reads the run directory from it; set it (a URI or a shared path)"
        )
    if serve.auth.token_env and not serve.auth.secret:
        raise RaydlError(
            f"serve.auth.secret: the RayService sets {serve.auth.token_env} from a Kubernetes Secret; "
            "name the Secret holding the token (and serve.auth.secret_key, its key)"
        )
    app = serve_app.application(serve, spec.cluster.storage, name=spec.name, job=spec.name)
    return {"proxy_location": "EveryNode", "applications": [app]}


def render_service(spec: JobSpec, meta: dict[str, Any], config_map: str) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "RayService",
        "metadata": {**meta, "name": f"{meta['name']}-serve"},
        "spec": {
            "serveConfigV2": yaml.safe_dump(serve_config(spec), sort_keys=False),
            "rayClusterConfig": cluster_spec(
                spec, name=meta["name"], spec_config_map=config_map, service=True
            ),
        },
    }


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (the job spec, serveConfigV2) as readable ``|`` blocks."""


_Dumper.add_representer(
    str,
    lambda d, s: d.represent_scalar("tag:yaml.org,2002:str", s, style="|" if "\n" in s else None),
)


def to_yaml(objects: list[dict[str, Any]]) -> str:
    return yaml.dump_all(objects, Dumper=_Dumper, sort_keys=False)


# The API client moved to raydl.cluster.kube_client (it imports this module to render);
# its functions still resolve here through importlib, which adds no import cycle.
_CLIENT = ("apply", "status")


def __getattr__(name: str) -> Any:
    if name in _CLIENT:
        return getattr(importlib.import_module("raydl.cluster.kube_client"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
