"""``cluster:``: where the job runs — embedded Ray, a Ray cluster, or KubeRay pods."""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from raydl.spec.base import Section

_K8S_QUANTITY = r"^[0-9]+(\.[0-9]+)?([EPTGMK]i?|[munk])?$"


class WorkerGroupSpec(Section):
    """A KubeRay worker group; the autoscaler keeps it between ``min`` and ``max`` pods."""

    name: str = Field(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", description="Group name (DNS label).")
    min: int = Field(0, ge=0, description="Fewest pods of the group.")
    max: int = Field(1, ge=0, description="Most pods of the group.")
    gpu: int = Field(0, ge=0, description="nvidia.com/gpu per pod.")
    cpu: float = Field(1, gt=0, description="CPUs per pod (requests = limits).")
    memory: str = Field("4Gi", pattern=_K8S_QUANTITY, description="Kubernetes quantity, e.g. 8Gi.")
    node_selector: dict[str, str] = Field(
        default_factory=dict, description="Kubernetes node selector of the pods."
    )
    tolerations: list[dict[str, Any]] = Field(
        default_factory=list, description="Kubernetes tolerations; GPU groups get nvidia.com/gpu's too."
    )

    @model_validator(mode="after")
    def _min_le_max(self) -> WorkerGroupSpec:
        if self.min > self.max:
            raise ValueError(f"min ({self.min}) must not exceed max ({self.max})")
        return self


class HeadSpec(Section):
    cpu: float = Field(1, gt=0, description="CPUs of the head pod (no training runs on it).")
    memory: str = Field("4Gi", pattern=_K8S_QUANTITY, description="Memory of the head pod, e.g. 8Gi.")


class ClusterSpec(Section):
    address: str | None = Field(
        None, description="Ray address to join (ray://… or host:port); null: embedded local Ray."
    )
    num_cpus: int | None = Field(
        None, ge=1, description="Logical CPUs of the embedded Ray (default: twice the cores)."
    )
    storage: str | None = Field(None, description="Where run directories go (local path or URI).")
    image: str = Field("rayproject/ray:2.60.0-py311", description="Image for KubeRay pods (needs raydl).")
    head: HeadSpec = Field(default_factory=HeadSpec, description="The KubeRay head pod.")
    worker_groups: list[WorkerGroupSpec] = Field(
        default_factory=list,
        description="KubeRay worker groups; default: one CPU group sized for train.workers.",
    )
    wandb_secret: str | None = Field(None, description="Kubernetes Secret with the W&B key (key api-key).")
