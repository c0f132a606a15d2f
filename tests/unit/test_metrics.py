"""Named metrics equal scikit-learn's, also when synced over a real 2-process gloo group
with an odd number of rows split unevenly between the ranks."""

import os
import tempfile

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from sklearn import metrics as skm

from raydl.evaluate.metrics import MetricSet, compute_test_metrics

N, K, L = 101, 3, 4  # odd rows; rank 0 gets 60, rank 1 gets 41
CUT = 60


def _data():
    rng = np.random.default_rng(7)
    y = rng.integers(0, K, N)
    logits = rng.normal(size=(N, K)) + 1.5 * np.eye(K)[y]
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    yb = rng.integers(0, 2, N)
    pb = np.clip(0.5 * yb + 0.5 * rng.random(N), 0, 1)
    yr = rng.normal(size=N) * 3 + 1
    pr = yr + rng.normal(size=N)
    yml = rng.integers(0, 2, (N, L))
    pml = np.clip(0.6 * yml + 0.5 * rng.random((N, L)), 0, 1)
    return y, probs, yb, pb, yr, pr, yml, pml


CLS = [
    "accuracy",
    "precision_macro",
    "precision_micro",
    "recall_macro",
    "recall_micro",
    "f1_macro",
    "f1_micro",
    "precision_per_class",
    "recall_per_class",
    "f1_per_class",
    "roc_auc",
    "confusion_matrix",
    "perplexity",
]


def _sets(rows: slice):
    y, probs, yb, pb, yr, pr, yml, pml = _data()
    t = torch.as_tensor
    cls = MetricSet("classification", CLS, K)
    cls.update(t(probs[rows]), t(y[rows]))
    binary = MetricSet("classification", ["roc_auc", "accuracy"], 2)
    pb2 = np.stack([1 - pb, pb], 1)
    binary.update(t(pb2[rows]), t(yb[rows]))
    reg = MetricSet("regression", ["mse", "rmse", "mae", "r2"])
    # two batches, to check states accumulate
    half = slice(rows.start, (rows.start + rows.stop) // 2)
    rest = slice(half.stop, rows.stop)
    reg.update(t(pr[half]), t(yr[half]))
    reg.update(t(pr[rest]), t(yr[rest]))
    ml = MetricSet("multilabel", ["hamming_loss", "jaccard"], L)
    ml.update(t(pml[rows]), t(yml[rows]))
    return {"cls": cls.compute(), "bin": binary.compute(), "reg": reg.compute(), "ml": ml.compute()}


def _expected():
    y, probs, yb, pb, yr, pr, yml, pml = _data()
    p = probs.argmax(1)
    prf = skm.precision_recall_fscore_support(y, p, zero_division=0)
    return {
        "cls": {
            "accuracy": skm.accuracy_score(y, p),
            "precision_macro": skm.precision_score(y, p, average="macro", zero_division=0),
            "precision_micro": skm.precision_score(y, p, average="micro", zero_division=0),
            "recall_macro": skm.recall_score(y, p, average="macro", zero_division=0),
            "recall_micro": skm.recall_score(y, p, average="micro", zero_division=0),
            "f1_macro": skm.f1_score(y, p, average="macro", zero_division=0),
            "f1_micro": skm.f1_score(y, p, average="micro", zero_division=0),
            "precision_per_class": prf[0].tolist(),
            "recall_per_class": prf[1].tolist(),
            "f1_per_class": prf[2].tolist(),
            "roc_auc": skm.roc_auc_score(y, probs, multi_class="ovr", average="macro"),
            "confusion_matrix": skm.confusion_matrix(y, p).tolist(),
            "perplexity": float(np.exp(skm.log_loss(y, probs))),
        },
        "bin": {"roc_auc": skm.roc_auc_score(yb, pb), "accuracy": skm.accuracy_score(yb, pb >= 0.5)},
        "reg": {
            "mse": skm.mean_squared_error(yr, pr),
            "rmse": float(np.sqrt(skm.mean_squared_error(yr, pr))),
            "mae": skm.mean_absolute_error(yr, pr),
            "r2": skm.r2_score(yr, pr),
        },
        "ml": {
            "hamming_loss": skm.hamming_loss(yml, pml >= 0.5),
            "jaccard": skm.jaccard_score(yml, pml >= 0.5, average="macro", zero_division=0),
        },
    }


def _assert_equal(got, want):
    for group, values in want.items():
        for name, v in values.items():
            np.testing.assert_allclose(
                np.asarray(got[group][name], dtype=float),
                np.asarray(v, dtype=float),
                rtol=1e-5,
                atol=1e-6,
                err_msg=f"{group}.{name}",
            )


def test_single_process_equals_sklearn():
    _assert_equal(_sets(slice(0, N)), _expected())


def _worker(rank: int, init_file: str, out_dir: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    try:
        got = _sets(slice(0, CUT) if rank == 0 else slice(CUT, N))
        torch.save(got, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def test_two_gloo_workers_uneven_shards_equal_sklearn():
    with tempfile.TemporaryDirectory() as tmp:
        mp.start_processes(_worker, args=(os.path.join(tmp, "init"), tmp), nprocs=2, start_method="spawn")
        want = _expected()
        for rank in (0, 1):  # every rank holds the global values, not its shard's
            _assert_equal(torch.load(os.path.join(tmp, f"rank{rank}.pt"), weights_only=False), want)
    # and a shard alone would differ: the test can tell synced from unsynced
    with pytest.raises(AssertionError):
        _assert_equal(_sets(slice(0, CUT)), want)


def test_test_metrics_default_and_absent_class():
    y, probs, *_ = _data()
    out = compute_test_metrics("classification", y, probs.argmax(1), probs, None, K)
    assert out["n"] == N and len(out["per_class"]) == K
    assert out["roc_auc"] == pytest.approx(skm.roc_auc_score(y, probs, multi_class="ovr"))
    keep = y != 2  # class 2 absent: ROC-AUC is undefined, not a wrong number
    out = compute_test_metrics("classification", y[keep], probs[keep].argmax(1), probs[keep], ["roc_auc"], K)
    assert out["roc_auc"] is None
