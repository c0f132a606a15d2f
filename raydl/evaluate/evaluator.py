"""Test-set evaluation of a checkpoint: predictions on the driver, exact metrics."""

from __future__ import annotations

from typing import Any

import numpy as np
import ray
import torch
import torch.nn as nn

from raydl.data.preprocess import Preprocessor
from raydl.evaluate.metrics import compute_test_metrics
from raydl.train import objectives


@torch.no_grad()
def predict(model: nn.Module, dataset: ray.data.Dataset, task: str, batch_size: int = 1024):
    """``(y, y_pred, scores)`` over a dataset of ``{"x", "y"}`` rows: class ids and
    probabilities (classification), or the model's scaled outputs (regression)."""
    model.eval()
    ys, outs = [], []
    for batch in dataset.iter_torch_batches(batch_size=batch_size):
        outs.append(model(batch["x"]).float())
        ys.append(batch["y"])
    y = torch.cat(ys).numpy()
    out = torch.cat(outs)
    if task == "classification":
        scores = torch.softmax(out, dim=-1).numpy()
        return y, scores.argmax(-1), scores
    return y, out.squeeze(-1).numpy(), None


def evaluate_model(
    model: nn.Module,
    test: ray.data.Dataset,
    preprocessor: Preprocessor,
    metrics: list[str] | None,
    details: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Test metrics; regression errors are in the target's original units. ``details``,
    when given, receives the error analysis (``errors``) and the predictions
    (``predictions``: y, y_pred, scores)."""
    task = preprocessor.task
    if objectives.has_own_objective(model):  # a generative model: its objective on test
        return objectives.test_objective(model, test)
    if task == "language_modeling":  # next-token loss and perplexity over the test tokens
        return objectives.test_language_model(model, test)
    y, y_pred, scores = predict(model, test, task)
    if task == "regression":
        y, y_pred = preprocessor.decode_target(y), preprocessor.decode_target(y_pred)
    result = compute_test_metrics(task, y, y_pred, scores, metrics, preprocessor.num_outputs)
    if task == "classification":
        result["classes"] = [str(c) for c in np.asarray(preprocessor.classes)]
    if details is not None:
        from raydl.evaluate.errors import error_analysis

        details["errors"] = error_analysis(task, result, y, y_pred, scores)
        details["predictions"] = {"y": y, "y_pred": y_pred, "scores": scores}
    return result
