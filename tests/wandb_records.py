"""Reading W&B offline runs back in tests."""

import struct


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


def wandb_config(path) -> dict:
    """The config a ``.wandb`` file records: the run's own, then later updates."""
    import json

    config = {}
    for r in read_wandb_records(path):
        kind = r.WhichOneof("record_type")
        updates = r.run.config.update if kind == "run" else r.config.update if kind == "config" else []
        config.update({item.key: json.loads(item.value_json) for item in updates})
    return config
