"""The job spec: one pydantic model per section, one module per section, pure schema
(no torch, no Ray).

Every field is described where it is defined; ``raydl schema`` prints the JSON Schema
made from these classes. Unknown keys are errors. Names are checked against the
component families of :mod:`raydl.catalog`, which imports no member. Loading a spec and
the rules that span sections (a metric that training must report, a builtin's label, …)
live one layer up, in :mod:`raydl.checks`; runtime code trusts a validated spec.
"""

from __future__ import annotations

import importlib
from typing import Any

from raydl.catalog import IMAGE_AUGMENTS, TEXT_AUGMENTS
from raydl.spec.augment import (
    AugmentStep,
    BrightnessAug,
    ContrastAug,
    CutMixAug,
    CutoutAug,
    GaussianBlurAug,
    GaussianNoiseAug,
    HFlipAug,
    MixUpAug,
    RandomDeletionAug,
    RandomInsertionAug,
    RandomSwapAug,
    ResizedCropAug,
    RotateAug,
    VFlipAug,
)
from raydl.spec.base import Section, registered
from raydl.spec.cluster import ClusterSpec, HeadSpec, WorkerGroupSpec
from raydl.spec.compress import CompressSpec, MeasureSpec, SelectSpec
from raydl.spec.data import (
    BuiltinSource,
    CleanSpec,
    DataSpec,
    FeatureSpec,
    FileSource,
    HFDiskSource,
    ImageSpec,
    ImagesSource,
    MissingStrategy,
    OutlierSpec,
    Source,
    SplitSpec,
    Subset,
    TextSpec,
    TokenizerSpec,
)
from raydl.spec.evaluate import CrossValidationSpec, EvaluateSpec
from raydl.spec.job import JobSpec
from raydl.spec.model import ModelSpec, PretrainedSpec
from raydl.spec.serve import AutoscalingSpec, BatchingSpec, ServeSpec
from raydl.spec.tracking import TrackingSpec, WandbSpec
from raydl.spec.train import (
    AdversarialSpec,
    CheckpointSpec,
    EarlyStoppingSpec,
    LossSpec,
    OptimizerSpec,
    SchedulerSpec,
    TrainSpec,
)
from raydl.spec.tune import TuneSchedulerSpec, TuneSpec

__all__ = [
    "IMAGE_AUGMENTS",
    "AdversarialSpec",
    "TEXT_AUGMENTS",
    "AugmentStep",
    "AutoscalingSpec",
    "BatchingSpec",
    "BrightnessAug",
    "BuiltinSource",
    "CheckpointSpec",
    "CleanSpec",
    "ClusterSpec",
    "CompressSpec",
    "ContrastAug",
    "CrossValidationSpec",
    "CutMixAug",
    "CutoutAug",
    "DataSpec",
    "MeasureSpec",
    "EarlyStoppingSpec",
    "EvaluateSpec",
    "FeatureSpec",
    "FileSource",
    "GaussianBlurAug",
    "GaussianNoiseAug",
    "HFDiskSource",
    "HFlipAug",
    "HeadSpec",
    "ImageSpec",
    "ImagesSource",
    "JobSpec",
    "LossSpec",
    "MissingStrategy",
    "MixUpAug",
    "ModelSpec",
    "OptimizerSpec",
    "OutlierSpec",
    "PretrainedSpec",
    "RandomDeletionAug",
    "RandomInsertionAug",
    "RandomSwapAug",
    "ResizedCropAug",
    "RotateAug",
    "SchedulerSpec",
    "Section",
    "SelectSpec",
    "ServeSpec",
    "Source",
    "SplitSpec",
    "Subset",
    "TextSpec",
    "TokenizerSpec",
    "TrackingSpec",
    "TrainSpec",
    "TuneSchedulerSpec",
    "TuneSpec",
    "VFlipAug",
    "WandbSpec",
    "WorkerGroupSpec",
    "registered",
]

# Loading moved one layer up with the cross-section rules (raydl.checks); these names
# still resolve here for code written against the one-module spec. importlib, not an
# import statement: the schema does not depend on its loader (lint-imports checks that).
_LOADING = ("apply_overrides", "load_spec", "read_spec_file", "validate_spec")


def __getattr__(name: str) -> Any:
    if name in _LOADING:
        return getattr(importlib.import_module("raydl.checks"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
