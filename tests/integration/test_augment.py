"""Augmentation inside Ray Train: a MixUp + CutMix job (soft labels) trains and learns."""

import json

import pytest

import raydl
from raydl.spec import load_spec

pytestmark = pytest.mark.integration


def test_mixup_cutmix_job_trains_without_shape_or_label_errors(ray_cluster, tmp_path, repo_root):
    spec = load_spec(
        f"{repo_root}/jobs/digits_cnn.yaml",
        [
            "train.epochs=6",
            "train.early_stopping=null",
            "train.workers=1",  # the augmentations run in the loop: the same in the driver
            "train.loss={label_smoothing: 0.05}",
            "data.augment=[{type: rotate, degrees: 10}, {type: cutout, size: 2}, "
            "{type: cutmix, p: 0.5}, {type: mixup, alpha: 0.2}]",
        ],
    )
    result = raydl.run(spec, runs_root=tmp_path)
    epochs = [json.loads(line) for line in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert len(epochs) == 6
    # mixed (harder) train batches, clean validation: train loss stays above val loss
    assert epochs[-1]["train_loss"] > epochs[-1]["val_loss"]
    assert result.metrics["accuracy"] >= 0.9
