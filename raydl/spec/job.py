"""The whole job spec: one section per stage."""

from __future__ import annotations

import yaml
from pydantic import Field

from raydl.spec.base import Section
from raydl.spec.cluster import ClusterSpec
from raydl.spec.compress import CompressSpec
from raydl.spec.data import DataSpec
from raydl.spec.evaluate import EvaluateSpec
from raydl.spec.model import ModelSpec
from raydl.spec.serve import ServeSpec
from raydl.spec.tracking import TrackingSpec
from raydl.spec.train import TrainSpec
from raydl.spec.tune import TuneSpec


class JobSpec(Section):
    """A raydl job: data → model → train → evaluate (→ tune → compress → serve)."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", description="Run name (letters, digits, _.-).")
    seed: int = Field(0, ge=0, description="Seeds splits, initialization and shuffling.")
    data: DataSpec = Field(description="The rows, their cleaning, features, split and augmentation.")
    model: ModelSpec = Field(description="The model to build and train.")
    train: TrainSpec = Field(default_factory=TrainSpec, description="The distributed training run.")
    evaluate: EvaluateSpec = Field(
        default_factory=EvaluateSpec, description="Test metrics and cross-validation."
    )
    tune: TuneSpec | None = Field(None, description="A hyperparameter search over the training run.")
    compress: CompressSpec | None = Field(None, description="Compression of the trained model.")
    serve: ServeSpec | None = Field(None, description="A Ray Serve endpoint for the model.")
    tracking: TrackingSpec | None = Field(None, description="Experiment tracking (W&B, TensorBoard).")
    cluster: ClusterSpec = Field(default_factory=ClusterSpec, description="Where the job runs.")

    def to_yaml(self) -> str:
        """The spec as YAML, every default filled in (what ``spec.yaml`` of a run holds)."""
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)
