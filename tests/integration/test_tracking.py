"""Tracking on a real local Ray: the W&B offline run and the TensorBoard event files are
read back and hold the same per-epoch values as metrics.jsonl, and the resolved spec."""

import json
import os

import pytest
import yaml

import raydl
from raydl.spec import load_spec
from tests.wandb_records import read_wandb_records

pytestmark = pytest.mark.integration


PLANTED = "plantedwandbkey0123456789abcdef01234567"  # 40 characters, as a W&B key is


def test_wandb_offline_and_tensorboard_hold_the_metrics(ray_cluster, tmp_path, repo_root, capfd):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    os.environ["WANDB_API_KEY"] = PLANTED  # restored after the test (tests/conftest.py)
    spec = load_spec(
        f"{repo_root}/jobs/digits_cnn.yaml",
        [
            "model.arch=mlp",
            "model.params={hidden: [32]}",
            "train.workers=1",
            "train.epochs=3",
            "tracking={wandb: {project: raydl-test, mode: offline}, tensorboard: true}",
        ],
    )
    result = raydl.run(spec, runs_root=tmp_path)
    rows = [json.loads(line) for line in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3]

    # TensorBoard: one scalar per epoch and metric, and the resolved spec as text
    acc = EventAccumulator(str(result.run_dir / "tensorboard"), size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    for key in ("train_loss", "val_loss", "val_accuracy", "lr"):
        events = acc.Scalars(key)
        assert [e.step for e in events] == [1, 2, 3]
        assert [e.value for e in events] == pytest.approx([r[key] for r in rows], rel=1e-6)
    (text,) = acc.Tensors("spec/text_summary")
    logged_spec = yaml.safe_load(text.tensor_proto.string_val[0].decode().strip("`").removeprefix("yaml\n"))
    assert logged_spec == spec.model_dump(mode="json")

    # W&B offline: the run landed on disk; its history and config are the same
    (wandb_file,) = (result.run_dir / "wandb").glob("wandb/offline-run-*/run-*.wandb")
    records = read_wandb_records(wandb_file)
    history = [
        {(item.key or ".".join(item.nested_key)): json.loads(item.value_json) for item in r.history.item}
        for r in records
        if r.WhichOneof("record_type") == "history"
    ]
    assert [h["epoch"] for h in history] == [1, 2, 3]
    for key in ("train_loss", "val_loss", "val_accuracy", "lr"):
        assert [h[key] for h in history] == pytest.approx([r[key] for r in rows], rel=1e-9)
    config = {}
    for r in records:  # the run record carries the config given to wandb.init; later updates follow
        kind = r.WhichOneof("record_type")
        updates = r.run.config.update if kind == "run" else r.config.update if kind == "config" else []
        config.update({item.key: json.loads(item.value_json) for item in updates})
    assert config["model"] == spec.model_dump(mode="json")["model"]
    assert config["train"]["epochs"] == 3 and config["name"] == "digits-cnn"

    # the key reached no file of the run (W&B's offline run included) and no log line
    leaked = [p for p in result.run_dir.rglob("*") if p.is_file() and PLANTED.encode() in p.read_bytes()]
    assert not leaked, leaked
    out, err = capfd.readouterr()
    assert PLANTED not in out + err
