"""Error analysis: confused pairs, worst examples, per-class rows."""

import numpy as np

from raydl.evaluate.errors import error_analysis
from raydl.evaluate.metrics import compute_test_metrics


def test_classification_errors():
    y = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2, 2])
    scores = np.full((10, 3), 0.1)
    pred = np.array([0, 0, 1, 1, 2, 1, 1, 1, 2, 2])  # 2→1 twice, 0→1 and 1→2 once
    scores[np.arange(10), pred] = 0.8
    scores[7] = [0.05, 0.9, 0.05]  # row 7: the true class (2) got the least
    m = compute_test_metrics("classification", y, pred, scores, ["accuracy"], 3)
    m["classes"] = ["a", "b", "c"]
    out = error_analysis("classification", m, y, pred, scores, top=3)
    first = {"true": "c", "predicted": "b", "count": 2, "share_of_true": 0.5, "rows": [6, 7]}
    assert out["confused_pairs"][0] == first  # rows: the pair's test rows, for their examples
    assert {(p["true"], p["predicted"]) for p in out["confused_pairs"][1:]} == {("a", "b"), ("b", "c")}
    assert out["worst"][0]["id"] == 7 and out["worst"][0]["p_true"] == 0.05
    assert [w["id"] for w in out["worst"]] == [7, 2, 4]
    assert out["per_class"][2]["class"] == "c" and out["per_class"][2]["recall"] == 0.5


def test_regression_worst_by_absolute_error():
    y = np.array([1.0, 2.0, 3.0, 4.0])
    p = np.array([1.1, 5.0, 2.0, 4.0])
    out = error_analysis("regression", {}, y, p, None, top=2)
    assert [w["id"] for w in out["worst"]] == [1, 2] and out["worst"][0]["abs_error"] == 3.0
