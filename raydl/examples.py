"""The examples behind the error analysis: each worst-predicted and most-confused test row
fetched from its source by the name the source gives it (``row_id``), as a person would
look at it — an image as a small PNG thumbnail, a text truncated, a table row's fields,
and an image folder's file path.

They are added to ``errors.json`` (``example`` on a worst row, ``examples`` on a pair), so
the report and anyone reading the file see the same thing. A source that names no rows (a
table without ``data.id_column``) gets no examples; the report says how to get them.
"""

from __future__ import annotations

import base64
import io
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np

from raydl.data.columns import TENSOR_COLUMN
from raydl.data.sources import IMAGE_PATH, ROW_ID
from raydl.errors import DataError
from raydl.spec import BuiltinSource, FileSource, ImagesSource, JobSpec

log = logging.getLogger(__name__)

TEXT_CHARS = 300  # a text example is cut here (with "…")
THUMBNAIL_PX = 56  # an image example's longer side, in pixels (8x8 digits are enlarged)


def attach_examples(spec: JobSpec, errors: dict[str, Any]) -> dict[str, Any]:
    """``errors`` (the error analysis) with the examples of its rows, where the source can
    give them; returns the same dict."""
    worst = errors.get("worst") or []
    pairs = errors.get("confused_pairs") or []
    wanted = [w["row_id"] for w in worst if "row_id" in w]
    wanted += [r for p in pairs for r in p.get("row_ids", [])]
    if not wanted:
        return errors
    try:
        found = fetch(spec, wanted)
    except (OSError, ValueError, DataError) as e:  # the source moved since training: no examples
        log.warning("error analysis: cannot read the examples from the source (%s)", e)
        return errors
    for w in worst:
        if w.get("row_id") in found:
            w["example"] = found[w["row_id"]]
    for p in pairs:
        p["examples"] = [found[r] for r in p.get("row_ids", []) if r in found]
    return errors


def fetch(spec: JobSpec, row_ids: list[Any]) -> dict[Any, dict[str, Any]]:
    """The example of each row name (``row_id``) the source holds, by that name."""
    src = spec.data.source
    if isinstance(src, ImagesSource) and "://" not in src.path:
        return {r: _image_file(Path(src.path), str(r)) for r in row_ids}
    if isinstance(src, BuiltinSource):
        from raydl.catalog import BUILTINS

        columns, _ = BUILTINS.get(src.name)().load(src)
        n = len(next(iter(columns.values())))
        names = columns.get(ROW_ID, np.arange(n))
        return _from_columns(spec, columns, {_key(v): i for i, v in enumerate(names)}, row_ids)
    if (
        isinstance(src, FileSource)
        and spec.data.id_column
        and "://" not in src.path
        and Path(src.path).is_file()
    ):
        frame = _read_table(src.type, Path(src.path))
        columns = {c: frame[c].to_numpy() for c in frame.columns}
        ids = columns[spec.data.id_column]
        return _from_columns(spec, columns, {_key(v): i for i, v in enumerate(ids)}, row_ids)
    return {}


def _key(v: Any) -> str:
    return str(v.item() if isinstance(v, np.generic) else v)


def _read_table(kind: str, path: Path):
    import pandas as pd

    if kind == "parquet":
        return pd.read_parquet(path)
    if kind == "jsonl":
        return pd.read_json(path, lines=True)
    return pd.read_csv(path)


def _from_columns(
    spec: JobSpec, columns: dict[str, np.ndarray], position: dict[str, int], row_ids: list[Any]
) -> dict[Any, dict[str, Any]]:
    text = spec.data.text.column if spec.data.text is not None else None
    skip = {spec.data.label, ROW_ID, spec.data.id_column}
    out: dict[Any, dict[str, Any]] = {}
    for r in row_ids:
        i = position.get(_key(r))
        if i is None:
            continue
        if TENSOR_COLUMN in columns:
            out[r] = {"image_png": thumbnail(np.asarray(columns[TENSOR_COLUMN][i]))}
        elif text and text in columns:
            out[r] = {"text": truncate(str(columns[text][i]))}
        else:
            out[r] = {"fields": {c: _plain(v[i]) for c, v in columns.items() if c not in skip}}
    return out


def _image_file(root: Path, relative: str) -> dict[str, Any]:
    from PIL import Image

    path = root / relative
    with Image.open(path) as img:
        pixels = np.asarray(img.convert("L" if img.mode in ("1", "L", "I", "I;16") else "RGB"))
    chw = pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)
    return {"image_png": thumbnail(chw), IMAGE_PATH: relative}


def thumbnail(chw: np.ndarray) -> str:
    """A (C, H, W) array (any range) as a base64 PNG whose longer side is ``THUMBNAIL_PX``."""
    from PIL import Image

    a = np.asarray(chw, dtype=np.float64)
    lo, hi = float(np.nanmin(a)), float(np.nanmax(a))
    a = np.zeros_like(a) if hi <= lo else (a - lo) / (hi - lo)
    pixels = (np.nan_to_num(a) * 255).round().astype(np.uint8)
    img = Image.fromarray(pixels[0] if pixels.shape[0] == 1 else pixels[:3].transpose(1, 2, 0))
    scale = THUMBNAIL_PX / max(img.size)
    size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
    img = img.resize(size, Image.Resampling.NEAREST)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def truncate(text: str, limit: int = TEXT_CHARS) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _plain(v: Any) -> Any:
    v = v.item() if isinstance(v, np.generic) else v
    if isinstance(v, float) and math.isnan(v):
        return None
    return v if isinstance(v, str | int | float | bool) or v is None else str(v)
