"""Gradient accumulation end to end on a real local Ray: the digits job with
``train.grad_accumulation: 2`` under 2-worker DDP (gloo, ``no_sync`` on the first
micro-step of each window) and under DeepSpeed ZeRO-2 (the engine told each window's
boundary). The learning-rate schedule counts optimizer steps, not micro-batches: the
cosine warm-up ends after epoch 1 and the decay reaches its floor at the last step."""

import json
import math

import pytest

import raydl
from raydl.spec import load_spec

pytestmark = pytest.mark.integration

PEAK_LR = 3.0e-3  # jobs/digits_cnn.yaml
OVERRIDES = [
    "train.grad_accumulation=2",
    "train.batch_size=32",  # 16 rows per worker per micro-batch, 64 per optimizer step
    "train.epochs=6",
    "train.early_stopping=null",
]


def _check(result):
    epochs = [json.loads(line) for line in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [e["epoch"] for e in epochs] == list(range(1, 7))
    # warm-up over the first epoch's optimizer steps, then a cosine to 0 over the other
    # five epochs' steps: the schedule advanced once per window of 2 micro-batches (once
    # per micro-batch, it would be twice as far along at every epoch's end)
    want = [PEAK_LR * 0.5 * (1 + math.cos(math.pi * e / 5)) for e in range(6)]
    assert [e["lr"] for e in epochs] == pytest.approx(want, rel=0.01, abs=1e-6)
    assert epochs[-1]["train_loss"] < epochs[0]["train_loss"]
    assert result.metrics["accuracy"] >= 0.95


def test_ddp_two_workers_accumulate_two_micro_batches(ray_cluster, tmp_path, repo_root):
    spec = load_spec(f"{repo_root}/jobs/digits_cnn.yaml", OVERRIDES)
    _check(raydl.run(spec, runs_root=tmp_path))


def test_deepspeed_zero2_accumulates_two_micro_batches(ray_cluster, tmp_path, repo_root):
    spec = load_spec(
        f"{repo_root}/jobs/digits_cnn.yaml", [*OVERRIDES, "train.strategy=deepspeed", "train.zero_stage=2"]
    )
    _check(raydl.run(spec, runs_root=tmp_path))
