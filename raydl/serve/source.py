"""The run directory a server loads: a local path or a URI (``cluster.storage``'s), and a
runs folder standing for its newest run of a job."""

from __future__ import annotations

import tempfile
from pathlib import Path

from raydl.errors import RaydlError
from raydl.rundir import is_uri


def local_run_dir(where: str, job: str | None = None) -> Path:
    """A local run directory for ``where``.

    Args:
        where: a run directory, or a runs folder (then its newest ``<job>-*`` run, or newest
            run); a local path or a pyarrow filesystem URI (copied to a temporary folder).
        job: the job's name, to pick among the runs of a runs folder.

    Raises:
        RaydlError: nothing there, or no run in it.
    """
    if is_uri(where):
        import pyarrow.fs as pafs

        try:
            fs, base = pafs.FileSystem.from_uri(where)
            base = base.rstrip("/")
            if fs.get_file_info(f"{base}/spec.yaml").type != pafs.FileType.File:
                base = _newest(
                    [
                        i.path
                        for i in fs.get_file_info(pafs.FileSelector(base))
                        if i.type == pafs.FileType.Directory
                    ],
                    job,
                    lambda p: fs.get_file_info(f"{p}/spec.yaml").type == pafs.FileType.File,
                    where,
                )
            dest = Path(tempfile.mkdtemp(prefix="raydl-serve-")) / Path(base).name
            dest.mkdir()
            pafs.copy_files(
                base, str(dest), source_filesystem=fs, destination_filesystem=pafs.LocalFileSystem()
            )
        except (OSError, ValueError) as e:
            raise RaydlError(f"{where}: cannot read the run directory ({e})") from None
        return dest
    path = Path(where)
    if not path.exists():
        raise RaydlError(f"{where}: no such run directory")
    if (path / "spec.yaml").is_file():
        return path.resolve()
    children = [str(p) for p in path.iterdir() if p.is_dir()]
    return Path(_newest(children, job, lambda p: (Path(p) / "spec.yaml").is_file(), where)).resolve()


def _newest(children: list[str], job: str | None, is_run, where: str) -> str:
    runs = sorted(c for c in children if is_run(c) and (job is None or Path(c).name.startswith(f"{job}-")))
    if not runs:
        raise RaydlError(
            f"{where}: not a run directory (no spec.yaml), and no run{f' of {job}' if job else ''} in it"
        )
    return runs[-1]  # <name>-<YYYYmmdd-HHMMSS>: the newest sorts last
