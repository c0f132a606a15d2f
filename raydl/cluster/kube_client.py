"""The Kubernetes API side of KubeRay: create the objects :mod:`raydl.cluster.kuberay`
renders, and read the status of a job spec's RayJob (and RayService), through the
``kubernetes`` client on the current kubeconfig (or the in-cluster service account)."""

from __future__ import annotations

from typing import Any

from kubernetes import client as k8s

from raydl.cluster.kuberay import GROUP, PLURALS, VERSION, render
from raydl.errors import RaydlError
from raydl.spec import JobSpec


def _api(context: str | None = None) -> Any:
    """A CustomObjectsApi on the current kubeconfig (or the in-cluster service account).

    Raises:
        RaydlError: no kubeconfig and not inside a cluster.
    """
    from kubernetes import config
    from kubernetes.config.config_exception import ConfigException

    try:
        config.load_kube_config(context=context)
    except (ConfigException, OSError, TypeError) as e:
        try:
            config.load_incluster_config()
        except ConfigException:
            raise RaydlError(
                f"no Kubernetes cluster configured: {str(e).strip() or 'no kubeconfig'} "
                "(set KUBECONFIG or ~/.kube/config, or pass --context)"
            ) from None
    return k8s.CustomObjectsApi(), k8s.CoreV1Api()


def _api_error(e: Exception, what: str) -> Exception:
    from urllib3.exceptions import HTTPError

    if isinstance(e, k8s.ApiException):
        return RaydlError(f"{what}: the API server said {e.status} {e.reason}")
    if isinstance(e, HTTPError | OSError):
        return RaydlError(f"{what}: cannot reach the Kubernetes API server ({type(e).__name__})")
    return e


def apply(objects: list[dict[str, Any]], namespace: str, context: str | None = None) -> list[str]:
    """Create the rendered objects; one ``Kind/name created`` line each.

    Raises:
        RaydlError: no cluster configured, the API server unreachable or refusing.
    """
    custom, core = _api(context)
    done = []
    for obj in objects:
        kind, name = obj["kind"], obj["metadata"]["name"]
        try:
            if kind == "ConfigMap":
                core.create_namespaced_config_map(namespace, obj, _request_timeout=10)
            else:
                custom.create_namespaced_custom_object(
                    GROUP, VERSION, namespace, PLURALS[kind], obj, _request_timeout=10
                )
        except Exception as e:
            raise _api_error(e, f"{kind}/{name}") from None
        done.append(f"{kind}/{name} created")
    return done


def status(spec: JobSpec, namespace: str, context: str | None = None) -> list[dict[str, Any]]:
    """The ``status`` of the RayJob (and RayService) rendered from ``spec``.

    Raises:
        RaydlError: no cluster configured, the API server unreachable, an object missing.
    """
    custom, _ = _api(context)
    out = []
    for obj in render(spec):
        if obj["kind"] == "ConfigMap":
            continue
        kind, name = obj["kind"], obj["metadata"]["name"]
        try:
            got = custom.get_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURALS[kind], name, _request_timeout=10
            )
        except Exception as e:
            raise _api_error(e, f"{kind}/{name}") from None
        out.append({"kind": kind, "name": name, "status": got.get("status", {})})
    return out
