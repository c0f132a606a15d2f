"""Shared by the exactness tests: a run's predictions.npz against the Predictor."""

import numpy as np


def check_exact(predictor, raw_rows, run_dir) -> None:
    """The Predictor's answers for raw rows are the run's predictions.npz: the same labels,
    probabilities within 1e-6."""
    saved = np.load(run_dir / "predictions.npz")
    answers = predictor.predict(raw_rows)
    classes = predictor.classes
    assert [a["label"] for a in answers] == [classes[i] for i in saved["y_pred"]]
    probs = np.array([[a["probabilities"][str(c)] for c in classes] for a in answers])
    np.testing.assert_allclose(probs, saved["scores"], atol=1e-6)
