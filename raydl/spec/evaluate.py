"""``evaluate:``: test metrics and cross-validation."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from raydl.catalog import METRICS
from raydl.spec.base import Section, registered


class CrossValidationSpec(Section):
    method: Literal["kfold", "loo"] = Field(
        "kfold", description="kfold (stratified for classification) or leave-one-out (tiny data)."
    )
    k: int = Field(5, ge=2, description="Folds (kfold).")


class EvaluateSpec(Section):
    metrics: list[Annotated[str, registered(METRICS)]] | None = Field(
        None, description="Test metrics by name; default: all that fit the task."
    )
    cross_validation: CrossValidationSpec | None = Field(None, description="k-fold CV.")
    calibration: Literal["temperature"] | None = Field(
        None,
        description="temperature: fit one logit temperature on the val split (classification); "
        "the Predictor (serving, raydl predict) applies it; ECE before/after on test in metrics.json.",
    )
