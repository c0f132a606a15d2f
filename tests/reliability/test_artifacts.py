"""Artifacts are whole or refused: a writer killed mid-write leaves the old file, a file
changed or cut short after sealing is refused with its name, a planted pickle is never
unpickled, and a full or read-only disk is one line from the CLI, not a traceback."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from raydl import artifacts
from raydl.errors import RaydlError
from raydl.train import checkpoint as ckpt

MLP = {"arch": "mlp", "params": {"hidden": [8]}, "input_shape": [4], "num_outputs": 3}


def _checkpoint(d: Path) -> Path:
    model = ckpt.build_from_config(MLP)
    opt = torch.optim.AdamW(model.parameters(), lr=0.1)
    ckpt.save(d, model, MLP, train_state={"epoch": 2, "best": 0.5, "stale": 0}, optimizer=opt)
    return d


def test_a_writer_killed_mid_write_leaves_the_old_file(tmp_path):
    target = tmp_path / "model.safetensors"
    target.write_bytes(b"old, whole")
    # a real process, killed with SIGKILL while it is half way through writing
    writer = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from raydl import artifacts\n"
            "def slow(p):\n"
            "    with open(p, 'wb') as f:\n"
            "        f.write(b'half'); f.flush(); print('writing', flush=True); time.sleep(60)\n"
            f"artifacts.write_with({str(target)!r}, slow)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert writer.stdout is not None and writer.stdout.readline().strip() == "writing"
    os.kill(writer.pid, signal.SIGKILL)
    writer.wait(10)
    assert target.read_bytes() == b"old, whole"
    leftovers = [p.name for p in tmp_path.iterdir() if p != target]
    assert leftovers and all(n.startswith(".model.safetensors.") and n.endswith(".tmp") for n in leftovers)


def test_a_checkpoint_is_sealed_and_a_file_cut_short_is_refused_by_name(tmp_path):
    d = _checkpoint(tmp_path / "ckpt")
    sums = json.loads((d / artifacts.CHECKSUMS).read_text())
    assert set(sums) == {ckpt.WEIGHTS, ckpt.CONFIG, ckpt.TRAIN_STATE}
    assert sums[ckpt.WEIGHTS] == artifacts.sha256(d / ckpt.WEIGHTS)
    ckpt.load_model_dir(d)  # whole: loads

    weights = (d / ckpt.WEIGHTS).read_bytes()
    (d / ckpt.WEIGHTS).write_bytes(weights[: len(weights) // 2])  # a copy that died half way
    with pytest.raises(artifacts.CorruptArtifact, match=r"model\.safetensors: sha256 .* refused unread"):
        ckpt.load_model_dir(d)
    (d / ckpt.WEIGHTS).unlink()
    with pytest.raises(artifacts.CorruptArtifact, match="missing from a sealed artifact"):
        ckpt.load_model_dir(d)


def test_replace_dir_swaps_a_whole_folder_and_refuses_to_copy_a_corrupt_one(tmp_path):
    src = _checkpoint(tmp_path / "trial")
    target = tmp_path / "run" / "checkpoints" / "best"
    artifacts.replace_dir(src, target)
    artifacts.replace_dir(src, target)  # over an existing one
    assert sorted(p.name for p in target.parent.iterdir()) == ["best"]  # no staging or old copy left
    ckpt.load_model_dir(target)
    (src / ckpt.CONFIG).write_text("{}")
    with pytest.raises(artifacts.CorruptArtifact, match="model.json"):
        artifacts.replace_dir(src, target)
    ckpt.load_model_dir(target)  # the installed copy is untouched


class _Planted:
    """Unpickling this runs ``touch <marker>``: what a malicious train_state.pt would do."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_planted_pickle_in_a_checkpoint_is_refused_unread(tmp_path):
    d = _checkpoint(tmp_path / "ckpt")
    marker = tmp_path / "pwned"
    torch.save({"epoch": 1, "best": None, "stale": 0, "payload": _Planted(marker)}, d / ckpt.TRAIN_STATE)
    artifacts.seal(d)  # the attacker can reseal: the loader must refuse on its own
    model = ckpt.build_from_config(MLP)
    with pytest.raises(RaydlError, match=r"train_state\.pt: not a plain training state, refused unread"):
        ckpt.load_train_state(d, model, None, None, None)
    assert not marker.exists()


def _tmpfs(where: Path, *options: str) -> Path:
    where.mkdir(parents=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", ",".join(["size=64k", *options]), "tmpfs", str(where)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({done.stderr.strip()})")
    return where


@pytest.fixture
def small_disks(tmp_path):
    mounted: list[Path] = []
    try:
        full = _tmpfs(tmp_path / "full")
        mounted.append(full)
        (full / "runs").mkdir()
        with open(full / "filler", "wb", buffering=0) as f, pytest.raises(OSError, match="No space"):
            while True:  # fill it to the last byte
                f.write(b"\0" * 4096)
        mounted.append(_tmpfs(tmp_path / "ro", "ro"))
        yield mounted
    finally:
        for m in mounted:
            subprocess.run(["umount", str(m)], check=False)


@pytest.mark.parametrize("disk", ["full", "read-only"])
def test_a_full_or_read_only_disk_is_one_line_not_a_traceback(repo_root, small_disks, disk):
    full, ro = small_disks
    runs = full / "runs" if disk == "full" else ro / "runs"
    done = subprocess.run(
        [sys.executable, "-m", "raydl.cli", "run", "jobs/digits_cnn.yaml", "--output", str(runs)],
        cwd=repo_root,
        capture_output=True,
        text=True,
        timeout=120,
    )
    err = done.stderr.strip().splitlines()
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    reason = "No space left on device" if disk == "full" else "Read-only file system"
    assert len(err) == 1 and err[0].startswith("error: cannot write ") and reason in err[0], err
    assert str(runs) in err[0] and "--output" in err[0]
    assert not runs.exists() or not any(runs.iterdir())  # no empty run left behind
