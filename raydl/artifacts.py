"""Files that are whole or absent: atomic writes, and a sha256 per file of an artifact.

Every file a later stage, ``--resume``, the Predictor or ``raydl serve`` reads is written
to a temporary name beside its target and renamed over it (``os.replace``, atomic on one
filesystem), so a crash mid-write leaves the old file or none, never half of one. An
artifact folder (a checkpoint, ``model/``, the preprocessor) is *sealed*: ``checksums.json``
lists the sha256 of each of its files, and the loaders :func:`verify` it before reading,
so a file changed or cut short after the fact (a copy that died half way, a full disk in
an upload) is refused with the file named instead of loading as garbage.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from raydl.errors import DataError

CHECKSUMS = "checksums.json"


class CorruptArtifact(DataError):
    """An artifact whose files are missing or differ from the sha256 it was sealed with."""


@contextlib.contextmanager
def replacing(path: str | Path) -> Iterator[Path]:
    """A temporary path beside ``path`` to write; on success it is synced and renamed to
    ``path``, on failure removed (``path`` keeps what it had)."""
    target = Path(path)
    tmp = _beside(target)
    try:
        yield tmp
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        if e.filename in (None, str(tmp)):  # name the file the user knows, not its temporary twin
            raise OSError(e.errno, e.strerror, str(target)) from e
        raise
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _beside(target: Path) -> Path:
    """A fresh hidden name in ``target``'s folder (a rename within one filesystem is atomic)."""
    return target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.tmp")


def write_text(path: str | Path, text: str) -> None:
    with replacing(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | Path, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, default=str) + "\n")


def write_with(path: str | Path, writer: Callable[[str], Any]) -> None:
    """``writer(tmp_path)`` writes the file (``safetensors.save_file``, ``torch.save``)."""
    with replacing(path) as tmp:
        writer(str(tmp))


def sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _files(directory: Path) -> list[str]:
    return sorted(
        p.relative_to(directory).as_posix()
        for p in directory.rglob("*")
        if p.is_file() and p.name != CHECKSUMS and not p.name.endswith(".tmp")
    )


def seal(directory: str | Path) -> dict[str, str]:
    """Write ``checksums.json`` (file → sha256) for every file under ``directory``; the
    mapping is returned for the run's ``manifest.json``."""
    d = Path(directory)
    sums = {name: sha256(d / name) for name in _files(d)}
    write_json(d / CHECKSUMS, sums)
    return sums


def verify(directory: str | Path) -> None:
    """Check a sealed folder's files against its ``checksums.json``. A folder written
    before sealing existed (no ``checksums.json``) passes.

    Raises:
        CorruptArtifact: a listed file is missing or its sha256 differs.
    """
    d = Path(directory)
    listing = d / CHECKSUMS
    if not listing.is_file():
        return
    try:
        sums = json.loads(listing.read_text())
    except ValueError:
        raise CorruptArtifact(f"{listing}: unreadable (cut short?); the folder cannot be trusted") from None
    for name, expected in sums.items():
        path = d / name
        if not path.is_file():
            raise CorruptArtifact(f"{path}: missing from a sealed artifact (see {CHECKSUMS})")
        got = sha256(path)
        if got != expected:
            raise CorruptArtifact(
                f"{path}: sha256 {got[:12]}… differs from the {expected[:12]}… it was written with "
                f"(changed or cut short after writing); refused unread"
            )


def replace_dir(
    source: str | Path, target: str | Path, then: Callable[[Path], Any] | None = None
) -> dict[str, str]:
    """Copy the folder ``source`` to ``target`` as one step: ``source`` verified, copied
    beside ``target``, sealed, then renamed into place; a crash leaves the old ``target`` or
    the new, never a mix. ``then(staging)`` adds files to the copy before it is sealed."""
    src, dst = Path(source), Path(target)
    dst.parent.mkdir(parents=True, exist_ok=True)
    verify(src)
    staging = _beside(dst)
    try:
        shutil.copytree(src, staging)
        if then is not None:
            then(staging)
        sums = seal(staging)
        old = None
        if dst.exists():
            old = dst.with_name(f".{dst.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(dst, old)
        os.replace(staging, dst)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return sums
