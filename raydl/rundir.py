"""The run directory: every stage reads and writes here.

runs/<name>-<timestamp>/
  spec.yaml  manifest.json  data_report.json  preprocessor/  checkpoints/best/
  metrics.jsonl  metrics.json  predictions.npz  model/ (the selected model, see raydl.backends)
"""

from __future__ import annotations

import datetime as dt
import json
import platform
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from raydl import artifacts
from raydl.errors import RaydlError


@dataclass(frozen=True)
class RunDir:
    path: Path

    spec = property(lambda self: self.path / "spec.yaml")
    manifest = property(lambda self: self.path / "manifest.json")
    data_report = property(lambda self: self.path / "data_report.json")
    preprocessor = property(lambda self: self.path / "preprocessor")
    best_checkpoint = property(lambda self: self.path / "checkpoints" / "best")
    selected_model = property(lambda self: self.path / "model")  # see raydl.backends
    metrics_log = property(lambda self: self.path / "metrics.jsonl")
    metrics = property(lambda self: self.path / "metrics.json")
    ray_storage = property(lambda self: self.path / "ray")

    @classmethod
    def create(cls, root: str | Path, name: str) -> RunDir:
        """A new, empty ``<root>/<name>-<YYYYmmdd-HHMMSS>`` (suffixed if taken)."""
        stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        base = Path(root).resolve() / f"{name}-{stamp}"
        path, i = base, 1
        while path.exists():
            i += 1
            path = base.with_name(f"{base.name}-{i}")
        path.mkdir(parents=True)
        return cls(path)

    @classmethod
    def open(cls, path: str | Path) -> RunDir:
        """An existing run directory.

        Raises:
            RaydlError: ``path`` is not a run directory.
        """
        run = cls(Path(path).resolve())
        if not run.spec.is_file():
            raise RaydlError(f"{path}: not a raydl run directory (no spec.yaml)")
        return run

    def write_json(self, path: Path, obj: Any) -> None:
        artifacts.write_json(path, obj)  # whole or absent: a crash mid-write keeps the old file

    def read_json(self, path: Path) -> Any:
        if not path.is_file():
            raise RaydlError(f"{path}: missing; did the run reach this stage?")
        return json.loads(path.read_text())

    def mark(self, status: str, **fields: Any) -> None:
        """Record the run's ``status`` (running, succeeded, failed, interrupted) and its
        details (``stage``, ``error``) in ``manifest.json``, keeping what it holds."""
        current = json.loads(self.manifest.read_text()) if self.manifest.is_file() else {}
        current.setdefault("created", dt.datetime.now().isoformat(timespec="seconds"))
        for stale in ("stage", "error"):  # a resumed run that fails again says where, anew
            current.pop(stale, None)
        current |= {"status": status, "updated": dt.datetime.now().isoformat(timespec="seconds"), **fields}
        self.write_json(self.manifest, current)

    def append_metrics(self, row: dict[str, Any]) -> None:
        with self.metrics_log.open("a") as f:
            f.write(json.dumps(row) + "\n")

    def read_metrics_log(self) -> list[dict[str, Any]]:
        if not self.metrics_log.is_file():
            return []
        lines = [line for line in self.metrics_log.read_text().splitlines() if line]
        rows = []
        for i, line in enumerate(lines):
            try:
                rows.append(json.loads(line))
            except ValueError:
                if i < len(lines) - 1:  # only the last line can be torn (a crash mid-append)
                    raise RaydlError(f"{self.metrics_log}: line {i + 1} is not JSON") from None
        return rows

    def record_artifact(self, folder: Path) -> None:
        """Note a sealed folder's sha256 per file in ``manifest.json`` (``artifacts``)."""
        sums = json.loads((folder / artifacts.CHECKSUMS).read_text())
        current = json.loads(self.manifest.read_text()) if self.manifest.is_file() else {}
        name = folder.relative_to(self.path).as_posix()
        current.setdefault("artifacts", {})[name] = sums
        self.write_json(self.manifest, current)

    def install(self, source: Path, target: Path, then: Any = None) -> None:
        """Copy the folder ``source`` to ``target`` in this run as one step, sealed, and
        recorded in the manifest (:func:`raydl.artifacts.replace_dir`)."""
        artifacts.replace_dir(source, target, then)
        self.record_artifact(target)


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def manifest(seed: int, data_fingerprint: str, ray_resources: dict[str, Any]) -> dict[str, Any]:
    """Versions, seed and data fingerprint: what is needed to reproduce a run."""
    import numpy
    import ray
    import torch

    from raydl._version import __version__

    return {
        "created": dt.datetime.now().isoformat(timespec="seconds"),
        "command": sys.argv,
        "versions": {
            "raydl": __version__,
            "ray": ray.__version__,
            "torch": torch.__version__,
            "numpy": numpy.__version__,
            "python": platform.python_version(),
        },
        "platform": platform.platform(),
        "seed": seed,
        "data_fingerprint": data_fingerprint,
        "git_commit": _git_commit(),
        "ray_resources": ray_resources,
    }


# ------------------------------------------------------------------ cluster.storage
def is_uri(storage: str) -> bool:
    """``s3://…``, ``gs://…``, ``file:///…``: a pyarrow filesystem URI, not a plain path."""
    return "://" in storage


def runs_root_for(storage: str | None) -> str | None:
    """Where to create run directories for ``cluster.storage``: the path itself when it is a
    (shared) path; None for a URI — the run is written locally and published at the end."""
    return storage if storage and not is_uri(storage) else None


def publish(run_dir: RunDir, storage: str) -> str:
    """Copy a finished run directory to ``storage`` (a pyarrow filesystem URI) and return its URI.

    Raises:
        RaydlError: the URI is not a filesystem pyarrow knows, or the copy fails.
    """
    import pyarrow.fs as pafs

    try:
        fs, base = pafs.FileSystem.from_uri(storage)
        dest = f"{base.rstrip('/')}/{run_dir.path.name}"
        fs.create_dir(dest, recursive=True)
        pafs.copy_files(
            str(run_dir.path), dest, source_filesystem=pafs.LocalFileSystem(), destination_filesystem=fs
        )
    except (OSError, ValueError) as e:  # pyarrow's errors derive from these
        raise RaydlError(f"cluster.storage: cannot write the run directory to {storage} ({e})") from None
    return f"{storage.rstrip('/')}/{run_dir.path.name}"
