"""Training control on a real local Ray: exploding steps stop the run naming the epoch and
step, or are skipped and counted, as the spec says."""

import json
import math

import pytest
import torch

import raydl
from raydl.errors import RaydlError
from raydl.models import build_model
from raydl.spec import load_spec

pytestmark = pytest.mark.integration

FAST = ["model.arch=mlp", "model.params={hidden: [32]}", "train.workers=1", "train.early_stopping=null"]


def test_exploding_gradient_stops_naming_epoch_and_step(ray_cluster, tmp_path, repo_root):
    # every step's gradient norm is far above this limit: the first step is bad
    spec = load_spec(
        f"{repo_root}/jobs/digits_cnn.yaml", [*FAST, "train.epochs=2", "train.grad_norm_limit=1e-6"]
    )
    with pytest.raises(RaydlError, match=r"stopped at epoch 1, step 1: the gradient norm .* exceeds"):
        raydl.run(spec, runs_root=tmp_path)
    (run_dir,) = tmp_path.iterdir()
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["epoch"] == 1 and "step 1" in rows[-1]["bad_step"]


def test_skipped_steps_are_counted_and_leave_the_weights_alone(ray_cluster, tmp_path, repo_root):
    # every step is above this limit: with on_bad_step=skip none is applied, the run
    # completes, each epoch counts all its steps, and the weights stay the seeded initial ones
    spec = load_spec(
        f"{repo_root}/jobs/digits_cnn.yaml",
        [*FAST, "train.epochs=2", "train.grad_norm_limit=1e-6", "train.on_bad_step=skip"],
    )
    result = raydl.run(spec, runs_root=tmp_path)
    rows = [json.loads(line) for line in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    train_rows = json.loads((result.run_dir / "data_report.json").read_text())["split"]["rows"]["train"]
    assert [r["epoch"] for r in rows] == [1, 2]
    assert [r["skipped_steps"] for r in rows] == [math.ceil(train_rows / 64)] * 2
    torch.manual_seed(spec.seed)
    initial = build_model("mlp", (1, 8, 8), 10, {"hidden": [32]})
    trained = raydl.load_model(result.run_dir)
    for (name, p), q in zip(initial.state_dict().items(), trained.state_dict().values()):
        assert torch.equal(p, q), name
