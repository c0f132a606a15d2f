"""``serve:``: the Ray Serve endpoint of a run's model (``raydl serve RUN_DIR``, and the
RayService ``raydl k8s render`` writes). Built by :mod:`raydl.serve`."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from raydl.spec.base import Section


class BatchingSpec(Section):
    enabled: bool = Field(True, description="Answer concurrent requests with one model call (@serve.batch).")
    max_batch_size: int = Field(32, ge=1, description="Most requests answered by one model call.")
    wait_s: float = Field(0.005, ge=0, description="Longest wait for a batch to fill, in seconds.")


class AutoscalingSpec(Section):
    min_replicas: int = Field(1, ge=0, description="Fewest model replicas.")
    max_replicas: int = Field(1, ge=1, description="Most model replicas.")
    target_ongoing_requests: float = Field(
        8, gt=0, description="Requests in flight per replica that the autoscaler aims for."
    )
    upscale_delay_s: float = Field(
        30, ge=0, description="How long load must stay high before adding replicas."
    )
    downscale_delay_s: float = Field(
        600, ge=0, description="How long load must stay low before removing replicas."
    )

    @model_validator(mode="after")
    def _min_le_max(self) -> AutoscalingSpec:
        if self.min_replicas > self.max_replicas:
            raise ValueError(f"min_replicas ({self.min_replicas}) must not exceed max_replicas")
        return self


class DriftSpec(Section):
    window: int = Field(
        500, ge=20, description="Live rows per replica compared with the training statistics."
    )
    p_value: float = Field(
        0.001,
        gt=0,
        lt=1,
        description="A numeric feature drifts when its KS test's p-value is below this; "
        "a categorical one when its χ² test's is.",
    )
    psi: float = Field(
        0.25, gt=0, description="A categorical feature (or the predicted classes) drifts above this PSI."
    )


class VersionSpec(Section):
    run: str = Field(
        ..., min_length=1, description="A run directory (a local path or URI) served beside the main run."
    )
    weight: float = Field(..., gt=0, lt=1, description="Its share of /predict requests (0 to 1).")
    name: str | None = Field(
        None, pattern=r"^[A-Za-z0-9_.-]+$", description="Its label in answers and metrics (canary-N)."
    )


class AuthSpec(Section):
    token_env: str | None = Field(
        None,
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="An environment variable holding a bearer token: every route but /healthz and the "
        "v2 health probes then asks for 'Authorization: Bearer <token>' (null: no auth).",
    )
    secret: str | None = Field(
        None,
        pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$",
        description="The Kubernetes Secret `raydl k8s render` sets token_env from (valueFrom.secretKeyRef).",
    )
    secret_key: str = Field("token", min_length=1, description="The token's key in that Secret.")

    @model_validator(mode="after")
    def _secret_needs_a_variable(self) -> AuthSpec:
        if self.secret is not None and self.token_env is None:
            raise ValueError(f"secret ({self.secret!r}) needs token_env: the variable the token goes in")
        return self


class ServeSpec(Section):
    route_prefix: str = Field("/", pattern=r"^/", description="The HTTP path the endpoint answers under.")
    model: Literal["selected", "best"] = Field(
        "selected", description="The compression stage's selected model (else the best checkpoint), or best."
    )
    batching: BatchingSpec = Field(default_factory=BatchingSpec, description="Request batching.")
    autoscaling: AutoscalingSpec = Field(default_factory=AutoscalingSpec, description="Replica autoscaling.")
    max_ongoing_requests: int | None = Field(
        None, ge=1, description="Requests a replica works on at once (default: twice the batch size)."
    )
    max_queued_requests: int = Field(
        64,
        ge=-1,
        description="Requests waiting for a replica; past it the answer is 503 at once (-1: no limit).",
    )
    overload_status: Literal[503, 429] = Field(
        503, description="The status of a request refused because the queue is full (429 adds Retry-After)."
    )
    retry_after_s: float | None = Field(
        1, ge=0, description="The Retry-After header (seconds) of a refused request; null: none."
    )
    request_timeout_s: float = Field(30, gt=0, description="A prediction taking longer answers 504.")
    max_request_bytes: int = Field(8 << 20, ge=1024, description="A larger request body answers 413.")
    max_request_rows: int = Field(
        1024, ge=1, description="A request with more rows (instances, or v2 rows) answers 413."
    )
    auth: AuthSpec = Field(default_factory=AuthSpec, description="Bearer-token authentication.")
    threshold: float | None = Field(
        None, ge=0, le=1, description="Below this top-class probability the answer is 'abstain'."
    )
    drift: DriftSpec = Field(default_factory=DriftSpec, description="Drift of live inputs against training.")
    log_requests: bool = Field(
        True, description="A structured log line per request (route, status, ms; no payload)."
    )
    num_cpus: float = Field(1, ge=0, description="CPUs a model replica reserves.")
    versions: list[VersionSpec] = Field(
        default_factory=list,
        description="Other runs served beside the main one (A/B); the main run gets the rest of the traffic.",
    )
    shadow: str | None = Field(
        None,
        min_length=1,
        description="A run seeing a copy of every /predict request; compared, never returned.",
    )
    seed: int | None = Field(None, description="Seed of the traffic split (null: unseeded).")

    @model_validator(mode="after")
    def _ongoing_holds_a_batch(self) -> ServeSpec:
        # a replica never has more requests than this in hand, so a smaller value caps every
        # batch below max_batch_size (and collapses throughput, ray-project/ray#43288)
        ongoing, batch = self.max_ongoing_requests, self.batching
        if ongoing is not None and batch.enabled and ongoing < batch.max_batch_size:
            raise ValueError(
                f"max_ongoing_requests ({ongoing}) must be at least "
                f"batching.max_batch_size ({batch.max_batch_size})"
            )
        return self

    @model_validator(mode="after")
    def _versions_leave_the_main_run_traffic(self) -> ServeSpec:
        total = sum(v.weight for v in self.versions)
        if total >= 1:
            raise ValueError(f"versions' weights sum to {total:g}; they must leave the main run some (< 1)")
        names = [v.name for v in self.versions if v.name]
        if len(set(names)) < len(names) or {"main", "shadow"} & set(names):
            raise ValueError(f"versions' names must be unique and not 'main' or 'shadow', got {names}")
        return self

    @property
    def routed(self) -> bool:
        """Served through the router (more than one version, or a shadow)."""
        return bool(self.versions) or self.shadow is not None

    @property
    def ongoing_requests(self) -> int:
        """``max_ongoing_requests`` as given, else room for two full batches."""
        if self.max_ongoing_requests is not None:
            return self.max_ongoing_requests
        return 2 * self.batching.max_batch_size if self.batching.enabled else 8
