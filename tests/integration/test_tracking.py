"""Tracking on a real local Ray: the W&B offline run and the TensorBoard event files are
read back and hold the same per-epoch values as metrics.jsonl, and the resolved spec."""

import json
import struct

import pytest
import yaml

import raydl
from raydl.spec import load_spec

pytestmark = pytest.mark.integration


def read_wandb_records(path):
    """The protobuf records of a ``.wandb`` file: a 7-byte W&B header, then LevelDB's log
    format (32 KiB blocks; each chunk: crc32 (4), length (2, LE), type (1) = full/first/
    middle/last). wandb ships no Python reader of its own since its Go core took over."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B", "not a W&B transaction log"
    records, pending, pos, block = [], b"", 7, 32768
    while pos + 7 <= len(data):
        left = block - pos % block
        if left < 7:  # the rest of a block too small for a header is padding
            pos += left
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        chunk = data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind == 0 and length == 0:
            continue
        pending = chunk if kind in (1, 2) else pending + chunk
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            records.append(record)
    return records


def test_wandb_offline_and_tensorboard_hold_the_metrics(ray_cluster, tmp_path, repo_root):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

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
