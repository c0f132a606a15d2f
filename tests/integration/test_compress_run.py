"""The compression stage on a real local Ray: a tiny digits CNN run (two epochs) with a
``compress:`` section compresses after evaluation (a structurally pruned candidate
fine-tuned for one epoch on Ray Train, a mobilenet student distilled for one epoch and
the same student alone); ``raydl compress RUN_DIR`` then runs the stage again with
overrides (static int8 calibrated on the run's train split, and the FGSM/PGD robustness
columns), and the selected model is what Predictor.from_run serves.
No accuracy is claimed here (benchmarks/compression.py measures that)."""

import json
import subprocess
import sys

import numpy as np
import pytest
import sklearn.datasets
from typer.testing import CliRunner

import raydl
from raydl.cli import app
from raydl.spec import validate_spec

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return tmp_path_factory.mktemp("runs")


QUICK = {"warmup": 2, "repetitions": 10, "throughput_batches": 2}


def test_a_run_compresses_after_evaluation_and_raydl_compress_reruns_the_stage(ray_cluster, runs):
    spec = validate_spec(
        {
            "name": "digits-compress",
            "data": {"source": {"type": "builtin", "name": "digits"}, "label": "target"},
            "model": {"arch": "cnn", "params": {"channels": [8, 16], "hidden": 32}},
            "train": {"workers": 1, "cpus_per_worker": 0.5, "epochs": 2, "batch_size": 64},
            "compress": {
                "techniques": ["dynamic_int8", "onnx", "prune_structured"],
                "finetune_epochs": 1,
                "measure": QUICK,
                # a light student (8 channels a layer), one epoch, distilled and alone (in the driver)
                "distill": {"student": {"arch": "mobilenet", "params": {"width": 0.05}}, "epochs": 1},
            },
        }
    )
    run_dir = raydl.run(spec, runs_root=runs).run_dir
    first = json.loads((run_dir / "compress" / "candidates.json").read_text())
    names = [r["name"] for r in first["candidates"]]
    assert names == [
        "original",
        "dynamic_int8",
        "onnx",
        "prune_structured",
        "prune_structured+ft",
        "distilled",
        "student_alone",
    ]
    pruned, tuned = first["candidates"][3:5]
    # half the channels and hidden neurons: every layer between them shrinks
    assert pruned["params"] < first["candidates"][0]["params"] / 1.8 and tuned["params"] == pruned["params"]
    assert tuned["finetune_epochs"] == 1 and tuned["recipe"] == pruned["recipe"]
    # the fine-tune ran on Ray Train through the training loop, beside (not over) the run
    log = (run_dir / "compress" / "finetune" / "prune_structured" / "metrics.jsonl").read_text()
    assert len(log.splitlines()) == 1 and "val_accuracy" in log
    assert len((run_dir / "metrics.jsonl").read_text().splitlines()) == 2
    # the students trained through the loop with the teacher's soft labels, and without
    distilled, alone = first["candidates"][5:]
    assert distilled["params"] == alone["params"] <= first["candidates"][0]["params"] / 2
    assert (distilled["alpha"], distilled["temperature"], distilled["epochs"]) == (0.7, 4.0, 1)
    assert alone["baseline"] and not alone["passed"] and "baseline" in alone["gate"]
    for name in ("distilled", "student_alone"):
        log = (run_dir / "compress" / "distill" / name / "metrics.jsonl").read_text()
        assert len(log.splitlines()) == 1 and "val_accuracy" in log
    # saved as its config and safetensors weights: a checkpoint folder the Predictor loads
    student = raydl.Predictor.from_run(run_dir, model=run_dir / "compress" / "candidates" / "distilled")
    saved = np.load(run_dir / "predictions.npz")
    images = sklearn.datasets.load_digits().images
    answers = student.predict([{"x": images[i]} for i in saved["id"]])
    accuracy = np.mean([a["label"] == int(t) for a, t in zip(answers, saved["y"])])
    assert accuracy == pytest.approx(distilled["metrics"]["accuracy"])
    assert first["test_rows"] == json.loads((run_dir / "metrics.json").read_text())["n"]
    original = first["candidates"][0]
    # the original, measured through the Predictor, scores what evaluation scored
    assert original["metrics"]["accuracy"] == pytest.approx(
        json.loads((run_dir / "metrics.json").read_text())["accuracy"]
    )
    assert 'id="compression"' in (run_dir / "report.html").read_text()

    # again from the command line, with overrides: a gate only the original can pass
    result = CliRunner().invoke(
        app,
        [
            "compress",
            str(run_dir),
            "compress.techniques=[onnx_int8, fp16, static_int8]",
            "compress.distill=null",
            "compress.select.max_metric_drop=0.0",
            "compress.select.prefer=size",
            "compress.robustness={rows: 64, pgd_steps: 3}",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "compression candidates" in result.output and "selected:" in result.output
    assert "FGSM" in result.output and "transfer" in result.output
    second = json.loads((run_dir / "compress" / "candidates.json").read_text())
    rows = {r["name"]: r for r in second["candidates"]}
    assert list(rows) == ["original", "onnx_int8", "fp16", "static_int8"]
    assert rows["static_int8"]["format"] == "torch-int8" and rows["static_int8"]["calibration_rows"] == 256
    assert second["robustness"] == {"epsilon": 0.1, "pgd_steps": 3, "pgd_step_size": None, "rows": 64}
    # the torch float models are attacked through their own gradients; int8 and ONNX are
    # scored on the rows crafted against the original
    attacks = {name: r["attack"] for name, r in rows.items()}
    assert attacks == {
        "original": "white-box",
        "fp16": "white-box",
        "onnx_int8": "transfer",
        "static_int8": "transfer",
    }
    assert all(0 <= r["pgd_accuracy"] <= 1 and 0 <= r["fgsm_accuracy"] <= 1 for r in rows.values())
    assert "<th>FGSM</th>" in (run_dir / "compress" / "section.html").read_text()
    chosen = second["selected"]
    assert rows[chosen]["passed"] and all(r["drop"] <= 0.0 for r in rows.values() if r["passed"])
    # a smaller candidate that lost accuracy is not chosen, and says why
    for r in rows.values():
        assert r["passed"] == (r["gate"] == "pass")
        if not r["passed"]:
            assert r["gate"].startswith("accuracy drop ")

    served = raydl.Predictor.from_run(run_dir)
    assert served.model["format"] == rows[chosen]["format"]
    answers = served.predict([{"x": images[i]} for i in saved["id"]])
    accuracy = np.mean([a["label"] == int(t) for a, t in zip(answers, saved["y"])])
    assert accuracy == pytest.approx(rows[chosen]["metrics"]["accuracy"])

    # a bad override: one line and exit code 2, before Ray starts
    bad = subprocess.run(
        [sys.executable, "-m", "raydl.cli", "compress", str(run_dir), "compress.select.metric=rsme"],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2, bad.stderr
    assert bad.stderr.strip().startswith("error: compress.select.metric: ")


def test_adversarial_training_buys_fgsm_and_pgd_accuracy_the_robustness_columns_show(ray_cluster, runs):
    """train.adversarial (half of each batch made FGSM examples at ε = 0.5) against the same
    run without it, both measured by compress.robustness at that ε on all 269 test rows.
    Measured: FGSM 0.09 → 0.50, PGD 0.004 → 0.35, clean accuracy 0.985 → 0.944."""

    def run(adversarial):
        train = {"workers": 1, "cpus_per_worker": 0.5, "epochs": 5, "batch_size": 32}
        spec = validate_spec(
            {
                "name": "digits-adversarial" if adversarial else "digits-plain",
                "data": {"source": {"type": "builtin", "name": "digits"}, "label": "target"},
                "model": {"arch": "cnn", "params": {"channels": [16, 32], "hidden": 64}},
                "train": {**train, **({"adversarial": {"epsilon": 0.5}} if adversarial else {})},
                "compress": {
                    "techniques": ["fp16"],
                    "measure": QUICK,
                    "robustness": {"epsilon": 0.5, "rows": 269, "pgd_steps": 3},
                },
            }
        )
        result = raydl.run(spec, runs_root=runs)
        table = json.loads((result.run_dir / "compress" / "candidates.json").read_text())
        return table["candidates"][0]  # the original: attacked white-box

    plain, hardened = run(False), run(True)
    assert hardened["attack"] == plain["attack"] == "white-box"
    assert hardened["fgsm_accuracy"] >= plain["fgsm_accuracy"] + 0.2, (plain, hardened)
    assert hardened["pgd_accuracy"] >= plain["pgd_accuracy"] + 0.2, (plain, hardened)
    assert hardened["metrics"]["accuracy"] >= 0.9  # bought at a few points of clean accuracy
