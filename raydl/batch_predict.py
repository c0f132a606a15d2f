"""``raydl predict RUN_DIR --input PATH --output PATH``: offline batch inference.

Ray Data reads the input (parquet, csv, jsonl; a folder of images is listed, and the actors
read the files),
``map_batches`` runs the run's :class:`~raydl.predict.Predictor` in a pool of actors —
each loads it once, on whatever node of the cluster it lands — and the driver writes the
rows as they come back, in input order: the input's columns (for images, the file path)
plus the prediction columns to ``PATH``, and every row that fails, with the reason, to
``PATH.errors.parquet``. Nothing is dropped without a word: the counts are printed.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from raydl.errors import RaydlError, RowProblem
from raydl.predict import Columns, Predictor
from raydl.registry import did_you_mean

log = logging.getLogger(__name__)

ERROR_COLUMN = "_raydl_error"
ROW_COLUMN = "row"  # the errors file: the row's position in the input as read (one file: its row number)
IMAGE_EXTENSIONS = ("png", "jpg", "jpeg")
FORMATS = {".parquet": "parquet", ".csv": "csv", ".jsonl": "jsonl", ".json": "jsonl"}
BLOCK_BYTES = 1 << 20  # blocks of the input while predicting


@dataclass
class BatchResult:
    """What a batch prediction did: rows read, predicted and failed, and where they went."""

    rows: int
    predicted: int
    failed: int
    output: Path
    errors: Path | None
    first_error: str | None = None


class PredictorActor:
    """One actor of the pool: the Predictor (shipped with the task, loaded once), and a
    batch of input rows → the same rows with prediction columns and an error column."""

    def __init__(self, predictor: list, image_column: str | None, threads: int) -> None:
        import ray
        import torch

        torch.set_num_threads(threads)  # the pool, not each actor, uses the machine's cores
        # the Predictor comes as [ObjectRef] (a list: Ray would resolve a bare ref into a
        # constructor argument held in the object store, which a restarted actor may lose)
        self.predictor: Predictor = ray.get(predictor[0])
        self.image_column = image_column

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self.image_column is not None:  # a batch of image files: read here, decoded by the Predictor
            batch = dict(batch)
            batch[self.image_column] = np.asarray([_read_file(p) for p in batch["path"]], dtype=object)
        n = len(next(iter(batch.values())))
        predicted, prepared = self.predictor.predict_columns(Columns(batch), unknown="ignore")
        out = {k: v for k, v in batch.items() if k != self.image_column}
        for name in self.predictor.output_columns:
            values = predicted[name]
            full = np.full(n, None, dtype=object) if values.dtype.kind in "OUS" else np.full(n, np.nan)
            full[prepared.good] = values
            out[name] = full
        why = np.full(n, "", dtype=object)
        for p in prepared.problems:  # "field 'a': not a number (got 'abc')", several joined by "; "
            text = str(RowProblem(None, p.field, p.value, p.reason)).removeprefix("request, ")
            why[p.row] = (why[p.row] + "; " if why[p.row] else "") + text
        out[ERROR_COLUMN] = why
        return out


def _read_file(path: str) -> bytes | None:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None  # the Predictor reports it: no image given


def _input(path: Path) -> tuple[str, list[str]]:
    """The input's kind (images, parquet, csv, jsonl) and its files.

    Raises:
        RaydlError: nothing readable there.
    """
    if not path.exists():
        raise RaydlError(f"--input: {path} does not exist")
    if path.is_file():
        kind = FORMATS.get(path.suffix.lower())
        if kind is None:
            if path.suffix.lower().lstrip(".") in IMAGE_EXTENSIONS:
                return "images", [str(path)]
            raise RaydlError(f"--input: {path.name}: not parquet, csv, jsonl or an image")
        return kind, [str(path)]
    files = sorted(str(p) for p in path.resolve().rglob("*") if p.is_file() and not p.name.startswith("."))
    by_kind: dict[str, list[str]] = {}
    for f in files:
        suffix = Path(f).suffix.lower()
        kind = "images" if suffix.lstrip(".") in IMAGE_EXTENSIONS else FORMATS.get(suffix)
        if kind:
            by_kind.setdefault(kind, []).append(f)
    if not by_kind:
        raise RaydlError(f"--input: {path} holds no images (png, jpg) nor parquet, csv or jsonl files")
    if len(by_kind) > 1:
        raise RaydlError(f"--input: {path} mixes {', '.join(sorted(by_kind))} files; give one kind")
    return next(iter(by_kind.items()))


def _read(kind: str, files: list[str], rows_per_block: int):
    """The input as a Ray Dataset. Image files are listed here and read by the actors
    (Ray Data's binary reader costs ~0.4 ms a file, as much as decoding a small PNG)."""
    import ray

    try:
        if kind == "images":
            blocks = max(1, -(-len(files) // rows_per_block))
            return ray.data.from_items([{"path": f} for f in files], override_num_blocks=blocks)
        if kind == "parquet":
            return ray.data.read_parquet(files)
        if kind == "csv":
            return ray.data.read_csv(files)
        return ray.data.read_json(files, lines=True)
    except (OSError, ValueError, pa.ArrowInvalid) as e:
        first = next((line for line in str(e).splitlines() if line.strip()), type(e).__name__)
        raise RaydlError(f"--input: cannot read as {kind}: {first}") from None


def _parquet_rows(files: list[str]) -> int:
    """Rows of parquet files, from their footers (Ray Data's count would run the read)."""
    import pyarrow.parquet as pq

    return sum(pq.ParquetFile(f).metadata.num_rows for f in files)


def _check_columns(predictor: Predictor, names: list[str], kind: str) -> list[str]:
    """Warnings about the input's columns; a needed column that is absent is an error.

    Raises:
        RaydlError: a column the model needs, with no fill value, is not in the input.
    """
    if kind == "images":
        if predictor.preprocessor.image_column is None:
            raise RaydlError("--input: a folder of images, but this run's model does not read images")
        return []
    pre = predictor.preprocessor
    own = {new: old for old, new in pre.rename.items()}
    notes = []
    for field in pre.input_schema()["fields"]:
        name, spec_name = field["name"], field.get("spec_name", field["name"])
        if name in names or spec_name in names:
            continue
        if field["required"]:
            raise RaydlError(
                f"--input: no column {name!r}, which the model needs; {did_you_mean(name, names)}"
                f"columns: {', '.join(names)}"
            )
        notes.append(f"no column {name!r}: every row gets training's fill value {field['fill']!r}")
    unknown = [c for c in names if c not in pre.known_fields() and c not in own]
    if unknown:
        inputs = [f["name"] for f in pre.input_schema()["fields"]]
        hints = {c: did_you_mean(c, inputs).strip() for c in unknown}
        shown = [f"{c} ({hints[c]})" if hints[c] else c for c in unknown]
        notes.append(f"columns the model does not read, passed through: {', '.join(shown)}")
    return notes


class _Writer:
    """Writes tables of one schema to a parquet, csv or jsonl file as they come."""

    def __init__(self, path: Path, kind: str) -> None:
        self.path, self.kind = path, kind
        self.schema: pa.Schema | None = None
        self._writer: Any = None
        self._file: Any = None

    def write(self, table: pa.Table) -> None:
        if not table.num_rows:
            return
        if self.schema is None:
            self.schema = _concrete(table.schema)
            self._open()
        table = _conform(table, self.schema)
        if self.kind == "jsonl":
            table.to_pandas().to_json(self._file, orient="records", lines=True)
        else:
            self._writer.write_table(table) if self.kind == "parquet" else self._writer.write(table)

    def _open(self) -> None:
        import pyarrow.csv as pacsv
        import pyarrow.parquet as pq

        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.kind == "parquet":
            self._writer = pq.ParquetWriter(str(self.path), self.schema)
        elif self.kind == "csv":
            self._writer = pacsv.CSVWriter(str(self.path), self.schema)
        else:
            self._file = open(self.path, "w")  # noqa: SIM115 - closed by close(), written batch by batch

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        if self._file is not None:
            self._file.close()


def _concrete(schema: pa.Schema) -> pa.Schema:
    """Columns that held only nulls in the first batch become text (a later batch may hold values)."""
    return pa.schema([f.with_type(pa.string()) if pa.types.is_null(f.type) else f for f in schema])


def _conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    try:
        return table.select(schema.names).cast(schema)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, KeyError) as e:
        raise RaydlError(f"--input: a later part of the input has other column types ({e})") from None


def predict_files(
    run_dir: str | Path,
    input_path: str | Path,
    output: str | Path,
    *,
    model: str = "selected",
    actors: int | None = None,
    batch_size: int = 1024,
    threads: int = 1,
    on_rows: Callable[[int, int], None] | None = None,
    on_start: Callable[[int | None, list[str]], None] | None = None,
) -> BatchResult:
    """Predict every row of ``input_path`` with the run's Predictor on the connected Ray
    cluster, writing ``output`` (and ``output.errors.parquet`` when rows fail).

    Args:
        model: ``selected``, ``best`` or a path (see :meth:`Predictor.from_run`).
        actors: the pool's size (default: half the cluster's CPUs, at least 1).
        batch_size: rows per batch (one forward pass each).
        threads: torch threads per actor.
        on_start: called with the number of rows (None when unknown before reading) and
            the notes about the input's columns.
        on_rows: called with (rows done, rows failed so far) after every batch.

    Raises:
        RaydlError: a bad input or output path, or an input the model cannot read.
    """
    from raydl.runtime import quiet_ray_data

    output = Path(output)
    out_kind = FORMATS.get(output.suffix.lower())
    if out_kind is None:
        raise RaydlError(f"--output: {output.name}: give a .parquet, .csv or .jsonl file")
    errors_path = output.with_name(output.name + ".errors.parquet")
    kind, files = _input(Path(input_path))
    predictor = Predictor.from_run(run_dir, model=model)
    quiet_ray_data()
    with _context():  # a dataset keeps the context it was built in: set it first
        return _predict(
            predictor,
            kind,
            files,
            input_path,
            output,
            out_kind,
            errors_path,
            actors,
            batch_size,
            threads,
            on_rows,
            on_start,
        )


@contextlib.contextmanager
def _context() -> Iterator[None]:
    """Rows come back in input order (``row`` means it); a file is read in blocks of
    ``BLOCK_BYTES``, not one block up to 128 MiB, so that every actor has work."""
    import ray

    ctx = ray.data.DataContext.get_current()
    ordered, block_bytes = ctx.execution_options.preserve_order, ctx.target_max_block_size
    ctx.execution_options.preserve_order = True
    ctx.target_max_block_size = min(block_bytes or BLOCK_BYTES, BLOCK_BYTES)
    try:
        yield
    finally:
        ctx.execution_options.preserve_order = ordered
        ctx.target_max_block_size = block_bytes


def _predict(
    predictor,
    kind,
    files,
    input_path,
    output,
    out_kind,
    errors_path,
    actors,
    batch_size,
    threads,
    on_rows,
    on_start,
) -> BatchResult:
    import ray

    ds = _read(kind, files, batch_size)
    schema = ds.schema()
    notes = _check_columns(predictor, list(schema.names) if schema else [], kind)
    total = len(files) if kind == "images" else (_parquet_rows(files) if kind == "parquet" else None)
    if on_start:
        on_start(total, notes)
    for stale in (output, errors_path):
        stale.unlink(missing_ok=True)
    size = actors or max(1, int(ray.cluster_resources().get("CPU", 2) // 2))
    image_column = predictor.preprocessor.image_column if kind == "images" else None
    root = str(Path(input_path).resolve()) if Path(input_path).is_dir() else None
    shipped = ray.put(predictor)  # loaded once here, fetched once by each actor, on any node
    predicted = ds.map_batches(
        PredictorActor,
        fn_constructor_kwargs={"predictor": [shipped], "image_column": image_column, "threads": threads},
        compute=ray.data.ActorPoolStrategy(size=size),
        batch_size=batch_size,
        batch_format="numpy",
        num_cpus=1,
    )
    out, errs = _Writer(output, out_kind), _Writer(errors_path, "parquet")
    done = failed = 0
    first_error = None
    try:
        for table in predicted.iter_batches(batch_format="pyarrow", batch_size=None):
            if root and "path" in table.column_names:
                table = _relative_paths(table, root)
            why = table.column(ERROR_COLUMN).to_numpy(zero_copy_only=False)
            bad = why != ""
            rows_here = np.arange(done, done + table.num_rows)
            good_table = table.filter(pa.array(~bad)).drop_columns([ERROR_COLUMN])
            out.write(good_table)
            if bad.any():
                skip = {*predictor.output_columns, ERROR_COLUMN}
                inputs = [c for c in table.column_names if c not in skip]
                bad_table = table.filter(pa.array(bad)).select(inputs)
                bad_table = bad_table.add_column(0, ROW_COLUMN, pa.array(rows_here[bad]))
                bad_table = bad_table.append_column("error", pa.array(why[bad].astype(str)))
                errs.write(bad_table)
                if first_error is None:
                    first_error = f"row {int(rows_here[bad][0])}: {why[bad][0]}"
                failed += int(bad.sum())
            done += table.num_rows
            if on_rows:
                on_rows(done, failed)
    finally:
        out.close()
        errs.close()
    if done - failed == 0 and not output.exists():
        _empty_output(output, out_kind)
    return BatchResult(done, done - failed, failed, output, errors_path if failed else None, first_error)


def _relative_paths(table: pa.Table, root: str) -> pa.Table:
    """Image paths relative to the input folder, as a run's predictions name its files."""
    prefix = root.rstrip("/") + "/"
    paths = [p[len(prefix) :] if p.startswith(prefix) else p for p in table.column("path").to_pylist()]
    return table.set_column(table.column_names.index("path"), "path", pa.array(paths))


def _empty_output(path: Path, kind: str) -> None:
    """Every row failed: an empty output file, so the next step finds one (and the count)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "parquet":
        import pyarrow.parquet as pq

        pq.write_table(pa.table({}), str(path))
    else:
        path.write_text("")
