"""Test-set evaluation of a checkpoint: predictions on the driver through the
:class:`~raydl.predict.Predictor`'s own forward pass and post-processing, exact metrics.

The test rows are preprocessed by the fitted preprocessor in Ray Data (the same code a
request goes through), so ``predictions.npz`` is what ``Predictor.predict`` answers for
the raw test rows.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import ray
import torch.nn as nn

from raydl.data.preprocess import Preprocessor
from raydl.evaluate.metrics import compute_test_metrics
from raydl.predict import Predictor

BATCH_SIZE = 1024


def predict(
    predictor: Predictor, dataset: ray.data.Dataset, batch_size: int = BATCH_SIZE
) -> dict[str, np.ndarray]:
    """The Predictor's answer columns over a dataset of preprocessed ``{"x", "y"?, "id"?}``
    rows, with ``y`` and ``id`` when the rows carry them."""
    parts: dict[str, list[np.ndarray]] = {}
    for batch in dataset.iter_batches(batch_size=batch_size, batch_format="numpy"):
        post = predictor.postprocess(predictor.forward(batch["x"]))
        post |= {k: batch[k] for k in ("y", "id") if k in batch}
        for k, v in post.items():
            parts.setdefault(k, []).append(np.asarray(v))
    return {k: np.concatenate(v) for k, v in parts.items()}


def evaluate_model(
    model: nn.Module | Predictor,
    test: ray.data.Dataset,
    preprocessor: Preprocessor,
    metrics: list[str] | None,
    details: dict[str, Any] | None = None,
    class_names: list[str] | None = None,
) -> dict[str, Any]:
    """Test metrics; regression errors are in the target's original units. ``details``,
    when given, receives the error analysis (``errors``) and the predictions
    (``predictions``: y, y_pred, scores, and the rows' ``id`` when the source names them).
    ``class_names`` (see :mod:`raydl.names`) replace the classes' values in ``classes``
    and the error analysis."""
    predictor = model if isinstance(model, Predictor) else Predictor.from_model(preprocessor, model)
    task = preprocessor.task
    out = predict(predictor, test)
    if "loss" in out:  # a generative model or a language model: its own per-row scores
        if task == "language_modeling":  # next-token loss over every predicted test token
            tokens = out["tokens"].astype(np.float64)
            loss = float((out["loss"] * tokens).sum() / max(tokens.sum(), 1.0))
            ppl = math.exp(min(loss, 700.0))
            return {"test_loss": loss, "perplexity": ppl, "n": len(tokens), "tokens": int(tokens.sum())}
        return {"test_loss": float(out["loss"].mean()), "n": len(out["loss"])} | (
            {"reconstruction_error": float(out["reconstruction_error"].mean())}
            if "reconstruction_error" in out
            else {}
        )
    if task == "classification":
        y, y_pred, scores = out["y"], out["label_id"], out["probabilities"]
    else:
        y, y_pred, scores = preprocessor.decode_target(out["y"]), out["value"], None
    result = compute_test_metrics(task, y, y_pred, scores, metrics, preprocessor.num_outputs)
    if task == "classification":
        result["classes"] = class_names or [str(c) for c in np.asarray(preprocessor.classes)]
    if details is not None:
        from raydl.evaluate.errors import error_analysis

        details["errors"] = error_analysis(task, result, y, y_pred, scores, ids=out.get("id"))
        details["predictions"] = {"y": y, "y_pred": y_pred, "scores": scores} | (
            {"id": out["id"]} if "id" in out else {}
        )
    return result
