"""A VAE through the job spec on a real local Ray: it trains on digits (loss falls),
evaluates its objective on test, and the saved model samples digit-shaped images."""

import json

import pytest
import torch

import raydl
from raydl.models.vae import sample
from raydl.spec import load_spec

pytestmark = pytest.mark.integration


def test_vae_job_trains_and_samples_images(ray_cluster, tmp_path, repo_root):
    spec = load_spec(
        f"{repo_root}/jobs/digits_cnn.yaml",
        [
            "model.arch=vae",
            'model.params={"latent": 8, "hidden": [64]}',
            "train.epochs=3",
            "train.early_stopping=null",
            "train.workers=1",  # in the driver: no worker group to start
            "train.checkpoint.metric=val_loss",
            "train.checkpoint.mode=min",
            "train.grad_clip=null",
        ],
    )
    result = raydl.run(spec, runs_root=tmp_path)
    epochs = [json.loads(line) for line in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert epochs[-1]["val_loss"] < epochs[0]["val_loss"]
    assert "val_accuracy" not in epochs[0]  # nothing to score a VAE against
    assert result.metrics["n"] > 0 and result.metrics["test_loss"] > 0
    drawn = sample(raydl.load_model(result.run_dir), 6, seed=0)
    assert drawn.shape == (6, 1, 8, 8) and torch.isfinite(drawn).all()
