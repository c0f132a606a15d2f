"""Training end to end on a real local Ray: accuracy floors, the run directory, and a
checkpoint that reloads and reproduces the test metrics."""

import json
import shutil
import subprocess
import sys
import textwrap

import pytest

import raydl
from raydl.pipeline import evaluate_run
from raydl.spec import load_spec

pytestmark = pytest.mark.integration


def test_digits_cnn_reaches_97_percent(digits_run):
    assert digits_run.metrics["accuracy"] >= 0.97
    assert digits_run.metrics["f1_macro"] >= 0.97
    cm = digits_run.metrics["confusion_matrix"]
    assert len(cm) == 10 and sum(map(sum, cm)) == digits_run.metrics["n"]


def test_run_directory_holds_what_a_user_reads(digits_run):
    run = digits_run.run_dir
    for name in (
        "spec.yaml",
        "manifest.json",
        "data_report.json",
        "metrics.json",
        "metrics.jsonl",
        "preprocessor/preprocessor.json",
        "checkpoints/best/model.safetensors",
        "checkpoints/best/model.json",
    ):
        assert (run / name).is_file(), name
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["seed"] == 42 and manifest["versions"]["raydl"] == raydl.__version__
    assert manifest["data_fingerprint"].startswith("1797:")
    epochs = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [e["epoch"] for e in epochs] == list(range(1, len(epochs) + 1))
    assert {"train_loss", "val_loss", "val_accuracy", "lr"} <= set(epochs[0])
    assert epochs[-1]["train_loss"] < epochs[0]["train_loss"]
    # the kept checkpoint is one with the best val_accuracy (ties may pick either)
    best = max(e["val_accuracy"] for e in epochs)
    assert epochs[digits_run.metrics["best_epoch"] - 1]["val_accuracy"] == best
    # the resolved spec is a valid spec and re-runs the same job
    assert load_spec(run / "spec.yaml") == load_spec(run / "spec.yaml", [])


def test_checkpoint_reloads_and_reproduces_test_metrics(digits_run):
    again = evaluate_run(digits_run.run_dir)
    for key in ("accuracy", "f1_macro", "confusion_matrix", "n"):
        assert again[key] == digits_run.metrics[key]


def test_checkpoint_loads_without_ray(digits_run):
    # A fresh interpreter where `import ray` fails: the model and preprocessor still load
    # and classify raw digits.
    code = textwrap.dedent(f"""
        import sys
        sys.modules["ray"] = None
        import numpy as np, sklearn.datasets, torch, raydl
        model = raydl.load_model({str(digits_run.run_dir)!r})
        pre = raydl.load_preprocessor({str(digits_run.run_dir)!r})
        d = sklearn.datasets.load_digits()
        x = torch.from_numpy(pre.features({{"x": d.images[:, None].astype("float32")}}))
        pred = model(x).argmax(-1).numpy()
        print((pre.decode_target(pred) == d.target).mean())
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert float(out.stdout.strip()) >= 0.97


def test_diabetes_regression_reports_errors_in_target_units(ray_cluster, tmp_path, repo_root):
    # one worker, in the driver: regression is the point here, not distribution
    spec = load_spec(f"{repo_root}/jobs/diabetes_mlp.yaml", ["train.epochs=25", "train.workers=1"])
    result = raydl.run(spec, runs_root=tmp_path)
    m = result.metrics
    assert m["r2"] > 0.3
    assert 30 < m["mae"] < 70  # the target spans 25..346: errors in its own units
    assert abs(m["rmse"] ** 2 - m["mse"]) < 1e-6 * m["mse"]


def test_one_worker_bf16_sgd_step_schedule_and_grad_clip(ray_cluster, tmp_path, repo_root):
    # One worker runs without DDP; bf16 autocast on CPU; SGD with Nesterov momentum; a
    # step schedule; clipping logs the gradient norm.
    spec = load_spec(
        f"{repo_root}/jobs/digits_cnn.yaml",
        [
            "model.arch=mlp",
            "model.params={hidden: [64]}",
            "train.workers=1",
            "train.precision=bf16",
            "train.epochs=4",
            "train.optimizer={type: sgd, lr: 0.05, momentum: 0.9, nesterov: true}",
            "train.scheduler={type: step, step_size: 2, gamma: 0.5}",
            "train.grad_clip=0.5",
            "train.early_stopping=null",
        ],
    )
    result = raydl.run(spec, runs_root=tmp_path)
    epochs = [json.loads(line) for line in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [e["lr"] for e in epochs] == pytest.approx([0.05, 0.025, 0.025, 0.0125])
    assert all(e["grad_norm"] > 0 for e in epochs)
    assert result.metrics["accuracy"] > 0.9


def test_one_worker_run_trains_in_the_driver_and_resumes_from_its_latest_checkpoint(
    ray_cluster, tmp_path, repo_root
):
    """One worker on one node trains in the driver (no worker group) and keeps its
    checkpoints as Ray Train would; a run stopped during epoch 3 (its state as a Ctrl-C
    leaves it) resumes from the epoch-2 checkpoint and trains epoch 3 only."""
    from raydl.pipeline import resume_run

    spec = load_spec(
        f"{repo_root}/jobs/digits_cnn.yaml",
        [
            "model.arch=mlp",
            "model.params={hidden: [32]}",
            "train.workers=1",
            "train.epochs=3",
            "train.early_stopping=null",
            "train.checkpoint.keep=3",
        ],
    )
    run = raydl.run(spec, runs_root=tmp_path).run_dir
    train = run / "ray" / "train"
    index = json.loads((train / "checkpoints.json").read_text())
    assert [k["name"] for k in index] == [f"checkpoint_00000{e}" for e in (1, 2, 3)]

    # as a Ctrl-C during epoch 3 leaves it: two epochs logged and saved, no metrics.json
    (run / "metrics.json").unlink()
    shutil.rmtree(train / "checkpoint_000003")
    (train / "checkpoints.json").write_text(json.dumps(index[:2]))
    log = (run / "metrics.jsonl").read_text().splitlines()
    (run / "metrics.jsonl").write_text("\n".join(log[:2]) + "\n")

    result = resume_run(run)
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3] and rows[2]["resumed_from_epoch"] == 2
    assert result.metrics["epochs_run"] == 3 and result.metrics["accuracy"] > 0.8
