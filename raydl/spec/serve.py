"""``serve:``: the Ray Serve endpoint of the selected model (described and validated;
``raydl k8s render`` renders its RayService; served by a later version)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from raydl.spec.base import Section


class BatchingSpec(Section):
    max_batch_size: int = Field(32, ge=1, description="Most requests answered by one model call.")
    wait_s: float = Field(0.01, ge=0, description="Longest wait for a batch to fill, in seconds.")


class AutoscalingSpec(Section):
    min_replicas: int = Field(1, ge=0, description="Fewest model replicas.")
    max_replicas: int = Field(1, ge=1, description="Most model replicas.")
    target_ongoing_requests: float = Field(
        8, gt=0, description="Requests in flight per replica that the autoscaler aims for."
    )


class ServeSpec(Section):
    route_prefix: str = Field("/", description="The HTTP path the endpoint answers under.")
    backend: Literal["torch", "onnxruntime"] = Field("torch", description="What runs the model.")
    batching: BatchingSpec = Field(default_factory=BatchingSpec, description="Request batching.")
    autoscaling: AutoscalingSpec = Field(default_factory=AutoscalingSpec, description="Replica autoscaling.")
    threshold: float | None = Field(
        None, ge=0, le=1, description="Below this top-class probability the answer is 'abstain'."
    )
