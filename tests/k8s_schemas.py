"""Offline checks of Kubernetes manifests: KubeRay objects against the CRDs' own
openAPIV3Schema (copied from ray-project/kuberay into tests/data/kuberay-crds), with unknown
fields rejected; core objects — and every pod template inside a KubeRay object — against
Kubernetes' own schemas with kubernetes-validate --strict."""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml

CRDS = Path(__file__).parent / "data" / "kuberay-crds"
K8S_VERSION = "1.33.0"
FILES = {
    "RayCluster": "ray.io_rayclusters.yaml",
    "RayJob": "ray.io_rayjobs.yaml",
    "RayService": "ray.io_rayservices.yaml",
}


def _closed(schema: Any) -> Any:
    """The API server prunes unknown fields silently; for a test they are mistakes."""
    if isinstance(schema, dict):
        schema = {k: _closed(v) for k, v in schema.items()}
        if (
            schema.get("type") == "object"
            and "properties" in schema
            and "additionalProperties" not in schema
            and not schema.get("x-kubernetes-preserve-unknown-fields")
        ):
            schema["additionalProperties"] = False
        return schema
    if isinstance(schema, list):
        return [_closed(v) for v in schema]
    return schema


@functools.cache
def crd_validator(kind: str) -> jsonschema.Validator:
    """A validator for the CRD's v1 schema; built once (checking a schema this big against
    the meta-schema on every call, as ``jsonschema.validate`` does, takes seconds)."""
    crd = yaml.load((CRDS / FILES[kind]).read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    (v1,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    return jsonschema.Draft7Validator(_closed(copy.deepcopy(v1["schema"]["openAPIV3Schema"])))


def _pod_templates(obj: dict[str, Any]) -> list[dict[str, Any]]:
    spec = obj["spec"]
    clusters = [spec] if obj["kind"] == "RayCluster" else []
    clusters += [spec[k] for k in ("rayClusterSpec", "rayClusterConfig") if k in spec]
    out = [spec["submitterPodTemplate"]] if "submitterPodTemplate" in spec else []
    for c in clusters:
        out.append(c["headGroupSpec"]["template"])
        out += [g["template"] for g in c.get("workerGroupSpecs", [])]
    return out


def validate(obj: dict[str, Any]) -> None:
    """Raise if ``obj`` is not what the API server (with KubeRay's CRDs) would accept."""
    kind = obj["kind"]
    if kind in FILES:
        assert obj["apiVersion"] == "ray.io/v1", obj["apiVersion"]
        error = jsonschema.exceptions.best_match(crd_validator(kind).iter_errors(obj))
        if error is not None:
            raise error
        for template in _pod_templates(obj):
            pod_template = {
                "apiVersion": "v1",
                "kind": "PodTemplate",
                "metadata": {"name": "t"},
                "template": template,
            }
            kubernetes_validate.validate(pod_template, K8S_VERSION, strict=True)
        if "serveConfigV2" in obj["spec"]:
            assert isinstance(yaml.safe_load(obj["spec"]["serveConfigV2"])["applications"], list)
    else:
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
