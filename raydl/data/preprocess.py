"""The fitted preprocessing: every step from a raw row, as the user's data holds it, to
model input — column names, parsing, gap fills, clipping, category encoding, scaling,
PCA, tokenization, image decoding — and the label encoding.

Its state is fitted on the train split only (:mod:`raydl.data.fit`), saved as JSON in the
run directory and loadable without Ray. Training applies it through Ray Data's
``map_batches`` (:meth:`Preprocessor.__call__`), the Predictor through
:meth:`Preprocessor.transform`: the same code, so training and serving cannot differ.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from raydl import artifacts
from raydl.data import images, rows
from raydl.data.columns import IMAGE_COLUMN, TENSOR_COLUMN
from raydl.data.rows import rename_columns
from raydl.errors import DataError, RowProblem

# The shared column names and the renaming live below the sources (raydl.data.columns,
# raydl.data.rows); they are named here too, where the preprocessing's readers look.
__all__ = ["IMAGE_COLUMN", "STATE_FILE", "TENSOR_COLUMN", "Preprocessor", "rename_columns"]

STATE_FILE = "preprocessor.json"


@dataclass
class Preprocessor:
    """Turns raw rows into model input ``x`` (float32, or int64 token ids) and target ``y``.

    Attributes:
        task: classification, regression or language_modeling.
        label: the label column of the raw rows.
        feature_columns: the table's feature columns, or None (a tensor, image or text column).
        input_shape: one example's shape after transform, e.g. ``[64]`` or ``[1, 28, 28]``.
        scaling: standard, minmax, robust or none.
        center, scale: per numeric feature (table), per channel (images) or per element
            (other tensors): x' = (x - center) / scale.
        categorical_columns: the feature columns encoded from their values (a subset of
            ``feature_columns``); ``categories[c]`` lists column c's known values.
        onehot: the categorical columns one-hot encoded into ``x``; the others become
            integer ids: a column of ``x`` (ordinal), or — for an embedding, when one-hot
            would be too wide — the last columns of ``x``, after any PCA, one per column of
            ``id_columns`` (``data_info["id_cardinalities"]`` tells a model how many ids
            each has; the ``mlp`` embeds them). Unknown values get id 0 (one-hot: all
            zeros), the known ones 1..n.
        pca_mean, pca_components: an optional PCA of the encoded features, (k, d).
        classes: the label values; a class id is its index here (classification).
        target_center, target_scale: the regression target's scaling.
        class_weights: per class id, for the loss (``data.balance: class_weights``).
        text_column: text rows: the column tokenized into ``x`` (int64 token ids).
        data_info: facts a model builder needs about its input, e.g. for text
            ``{"vocab_size", "pad_id", "max_length"}``; ``{}`` otherwise.
        rename: the source's own column names → the spec's (``data.source.rename``); a
            row may use either.
        source_columns: every column of the source, by its own name: a field outside
            these (and the spec's names) is unknown to the model.
        row_id_column: the column naming each row (``data.id_column``, an image's path);
            never a feature.
        fill_values: the value filling a gap, per feature column with a fill strategy
            (``data.clean.missing``), fitted on the train split; a gap in another
            feature column cannot be used.
        clip_bounds: ``[low, high]`` per numeric column clipped as an outlier rule
            (``data.clean.outliers.action: clip``), fitted on the train split.
        image_column, image_mode: image rows: the column decoded (PNG/JPEG bytes, base64
            or a path) and its colour mode (L or RGB); ``input_shape`` is (C, H, W).
        tokenizer: text rows: the ``tokenizers.Tokenizer`` (saved as tokenizer.json
            beside the state, not in it).
    """

    task: str
    label: str
    feature_columns: list[str] | None
    input_shape: list[int]
    scaling: str = "standard"
    center: list[float] = field(default_factory=list)
    scale: list[float] = field(default_factory=list)
    classes: list[Any] | None = None
    target_center: float = 0.0
    target_scale: float = 1.0
    class_weights: list[float] | None = None
    categorical_columns: list[str] = field(default_factory=list)
    categories: dict[str, list[Any]] = field(default_factory=dict)
    onehot: list[str] = field(default_factory=list)
    ordinal_in_x: bool = False
    pca_mean: list[float] = field(default_factory=list)
    pca_components: list[list[float]] = field(default_factory=list)
    text_column: str | None = None
    data_info: dict[str, Any] = field(default_factory=dict)
    rename: dict[str, str] = field(default_factory=dict)
    source_columns: list[str] = field(default_factory=list)
    row_id_column: str | None = None
    fill_values: dict[str, Any] = field(default_factory=dict)
    clip_bounds: dict[str, list[float]] = field(default_factory=dict)
    image_column: str | None = None
    image_mode: str | None = None
    tokenizer: Any = field(default=None, repr=False, compare=False)

    # ------------------------------------------------------------ the columns
    @property
    def numeric_columns(self) -> list[str]:
        return [c for c in self.feature_columns or [] if c not in self.categorical_columns]

    @property
    def id_columns(self) -> list[str]:
        """Categorical columns given as integer ids in the ``ids`` output (embeddings)."""
        return [] if self.ordinal_in_x else [c for c in self.categorical_columns if c not in self.onehot]

    @property
    def input_columns(self) -> list[str]:
        """The columns a row needs (by the spec's names): what the model reads."""
        if self.text_column is not None:
            return [self.text_column]
        if self.image_column is not None:
            return [self.image_column]
        return list(self.feature_columns) if self.feature_columns is not None else [TENSOR_COLUMN]

    def known_fields(self) -> set[str]:
        """Every field name a raw row may carry: inputs, the label, the row id and the
        source's other columns, under the source's names or the spec's."""
        spec_names = {*self.input_columns, self.label, *([self.row_id_column] if self.row_id_column else [])}
        return spec_names | set(self.source_columns) | set(self.rename) | set(self.rename.values())

    def input_schema(self) -> dict[str, Any]:
        """What a request row holds, for serving and for users: per input field its name
        in the user's data, its kind (number, category, text, image, tensor), whether a
        gap is filled (and with what) or refused, and for images the shape and mode."""
        own = {new: old for old, new in self.rename.items()}
        out: list[dict[str, Any]] = []
        for c in self.input_columns:
            entry: dict[str, Any] = {"name": own.get(c, c)} | ({"spec_name": c} if c in own else {})
            if c == self.text_column:
                entry["kind"] = "text"
            elif c == self.image_column:
                entry |= {"kind": "image", "shape": list(self.input_shape), "mode": self.image_mode}
            elif self.feature_columns is None:
                entry |= {"kind": "tensor", "shape": list(self.input_shape)}
            elif c in self.categorical_columns:
                entry |= {"kind": "category", "categories": list(self.categories.get(c, []))}
            else:
                entry["kind"] = "number"
                if c in self.clip_bounds:
                    entry["clip"] = list(self.clip_bounds[c])
            entry["required"] = c not in self.fill_values
            if c in self.fill_values:
                entry["fill"] = self.fill_values[c]
            out.append(entry)
        return {
            "fields": out,
            "label": own.get(self.label, self.label),
            "ignored": sorted(self.known_fields() - {e["name"] for e in out} - set(self.input_columns)),
        }

    # ------------------------------------------------------------------ apply
    def transform(
        self, batch: dict[str, Any], *, renamed: bool = False, n: int | None = None
    ) -> tuple[np.ndarray, np.ndarray, list[RowProblem]]:
        """Model input for the usable rows of a batch of raw columns, and the problems of
        the others. Columns go by the source's own names (renamed here as the source
        renamed them) or, with ``renamed``, by the spec's (training's rows, renamed as
        they were read). ``n``: the number of rows, where the batch cannot tell (rows
        given as empty dicts have no columns).

        Returns:
            ``(x, good, problems)``: ``x`` holds the rows whose indices are in ``good``
            (float32 ``(G, *input_shape)``, or int64 token ids); ``problems`` names each
            other row's field, value and reason (a gap with no fill value, a value of
            the wrong type, an image that does not decode).
        """
        if not renamed:
            batch = rename_columns(batch, self.rename)
        n = rows.batch_length(batch) if n is None else n
        cols, problems = self._columns(batch, n)
        bad_rows = {p.row for p in problems}
        good = np.asarray([i for i in range(n) if i not in bad_rows], dtype=np.int64)
        if not len(good):
            dtype = np.int64 if self.text_column is not None else np.float32
            return np.zeros((0, *self.input_shape), dtype), good, problems
        if len(good) < n:
            cols = {k: v[good] for k, v in cols.items()}
        return self._encode(cols, len(good)), good, problems

    def features(self, batch: dict[str, Any]) -> np.ndarray:
        """Model input for a batch of rows (by the spec's column names) that must all be
        usable, as training's cleaned rows are: float32 ``(B, *input_shape)``, or int64
        token ids ``(B, max_length)``.

        Raises:
            DataError: a row cannot be used, named with its field, value and reason.
        """
        x, _, problems = self.transform(batch, renamed=True)
        if problems:
            raise DataError(f"data: a row that preprocessing cannot use: {problems[0]}")
        return x

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Ray Data ``map_batches`` form: raw rows → ``{"x", "y"}`` (a language model's
        rows: ``{"x"}``, the token ids are their own target)."""
        if self.task == "language_modeling":
            return {"x": self.features(batch)}
        return {"x": self.features(batch), "y": self.encode_target(batch[self.label])}

    def with_row_ids(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """:meth:`__call__` and the row id column as ``id`` (the test split's form: its
        predictions name their rows)."""
        out = self(batch)
        if self.row_id_column and self.row_id_column in batch:
            out["id"] = np.asarray(batch[self.row_id_column])
        return out

    def _columns(self, batch: dict[str, Any], n: int) -> tuple[dict[str, np.ndarray], list[RowProblem]]:
        """Each input column parsed by its kind, numbers clipped, gaps filled or refused."""
        problems: list[RowProblem] = []
        out: dict[str, np.ndarray] = {}

        def refuse(c: str, raw: np.ndarray, mask: np.ndarray, reason: str) -> None:
            problems.extend(RowProblem(int(i), c, _plain(raw[i]), reason) for i in np.flatnonzero(mask))

        for c in self.input_columns:
            raw = rows.column_of(batch[c]) if c in batch else np.full(n, None, dtype=object)
            gap = np.zeros(n, bool)
            if c == self.text_column:
                v, gap, bad = rows.texts(raw)
                refuse(c, raw, bad, "expected text")
            elif c == self.image_column:  # never filled: a gap is refused here
                refuse(c, raw, rows.missing(raw), "no image given")
                ok = np.flatnonzero(~rows.missing(raw))
                decoded, failed = images.decode_batch(raw[ok], self.image_mode or "L", self._image_size)
                v = np.zeros((n, *decoded.shape[1:]), np.float32)
                v[ok] = decoded
                problems.extend(RowProblem(int(ok[j]), c, _plain(raw[ok[j]]), w) for j, w in failed.items())
            elif self.feature_columns is None:  # a tensor column
                v, failed = self._tensor(batch.get(c), n)
                problems.extend(RowProblem(i, c, None, why) for i, why in failed.items())
            elif c in self.categorical_columns:
                v, gap, bad = rows.categories(raw)
                refuse(c, raw, bad, "expected one category value")
            else:
                v, gap, bad = rows.numbers(raw)
                refuse(c, raw, bad, "not a number")
                if c in self.clip_bounds:
                    lo, hi = self.clip_bounds[c]
                    v = np.where(np.isnan(v), v, np.clip(v, lo, hi))
            if gap.any():
                if c not in self.fill_values:
                    refuse(c, raw, gap, "is missing, and training fills no gaps here (data.clean.missing)")
                elif v.dtype == object:
                    v = v.copy()
                    v[gap] = self.fill_values[c]
                else:
                    v = np.where(gap, float(self.fill_values[c]), v)
            out[c] = v
        return out, problems

    @property
    def _image_size(self) -> tuple[int, int]:
        return int(self.input_shape[-2]), int(self.input_shape[-1])

    def _tensor(self, values: Any, n: int) -> tuple[np.ndarray, dict[int, str]]:
        """A tensor column (one array per row, e.g. digits' 8x8 pixels) as float32
        ``(B, size)``; a row of the wrong size or with a non-finite value is refused."""
        size = math.prod(self.input_shape)
        if values is None:
            return np.zeros((n, size), np.float32), {i: "is missing" for i in range(n)}
        v = np.asarray(values) if not isinstance(values, np.ndarray) else values
        if v.dtype != object and v.ndim >= 2 and math.prod(v.shape[1:]) == size:
            x = v.reshape(n, size).astype(np.float32)
        else:
            x = np.zeros((n, size), np.float32)
            bad: dict[int, str] = {}
            for i, r in enumerate(rows.column_of(values)):
                try:
                    a = np.asarray(r, dtype=np.float32).reshape(-1)
                except (TypeError, ValueError):
                    bad[i] = f"expected {size} numbers"
                    continue
                if a.size != size:
                    bad[i] = f"expected {size} numbers ({'x'.join(map(str, self.input_shape))}), got {a.size}"
                else:
                    x[i] = a
            if bad:
                return x, bad
        finite = np.isfinite(x).all(1)
        return x, {int(i): "holds a missing or non-finite value" for i in np.flatnonzero(~finite)}

    def _encode(self, cols: dict[str, np.ndarray], n: int) -> np.ndarray:
        """Parsed, filled columns of usable rows → model input."""
        if self.text_column is not None:
            from raydl.data.text import encode

            return encode(self.tokenizer, cols[self.text_column])
        x: np.ndarray
        if self.feature_columns is None:  # a tensor or decoded images: (B, C, H, W) or flat
            x = np.asarray(cols[self.image_column or TENSOR_COLUMN], dtype=np.float32).reshape(n, -1)
            if self.scaling != "none" and self.center:
                # per channel when there are fewer statistics than values (images), else per element
                k = len(self.center)
                center = np.asarray(self.center, np.float32)[None, :, None]
                scale = np.asarray(self.scale, np.float32)[None, :, None]
                x = ((x.reshape(n, k, -1) - center) / scale).reshape(n, -1)
            return x.reshape((n, *self.input_shape))
        numeric: list[np.ndarray] = [np.asarray(cols[c], dtype=np.float32) for c in self.numeric_columns]
        x = np.stack(numeric, axis=1) if numeric else np.zeros((n, 0), np.float32)
        if self.scaling != "none" and numeric:
            x = (x - np.asarray(self.center, np.float32)) / np.asarray(self.scale, np.float32)
        parts = [x]
        for c in self.categorical_columns:
            ids = self.category_ids(c, cols[c])
            if c in self.onehot:
                parts.append(np.eye(len(self.categories[c]) + 1, dtype=np.float32)[ids][:, 1:])
            elif self.ordinal_in_x:
                parts.append(ids[:, None].astype(np.float32))
        x = np.concatenate(parts, axis=1) if len(parts) > 1 else x
        if self.pca_components:
            components = np.asarray(self.pca_components, np.float32)  # (k, d)
            x = (x - np.asarray(self.pca_mean, np.float32)) @ components.T
        if self.id_columns:  # ids for an embedding: exact in float32 below 2**24
            embedded = [self.category_ids(c, cols[c]).astype(np.float32) for c in self.id_columns]
            x = np.concatenate([x, np.stack(embedded, axis=1)], axis=1)
        return x.reshape((n, *self.input_shape))

    def raw_pixels(self, batch: dict[str, Any]) -> np.ndarray:
        """Decoded images or the tensor column of a batch of training's rows, before
        scaling, as float32 ``(B, *input_shape)``: what scaling is fitted on."""
        cols, problems = self._columns(batch, rows.batch_length(batch))
        if problems:
            raise DataError(f"data: a row that preprocessing cannot use: {problems[0]}")
        x = np.asarray(cols[self.image_column or TENSOR_COLUMN], dtype=np.float32)
        return x.reshape((len(x), *self.input_shape))

    def clean_columns(self, batch: dict[str, Any]) -> dict[str, np.ndarray]:
        """The feature columns of a batch of training's rows parsed, clipped and filled
        (what scaling and the categories are fitted on), with the label."""
        n = rows.batch_length(batch)
        cols, problems = self._columns(batch, n)
        if problems:
            raise DataError(f"data: a row that preprocessing cannot use: {problems[0]}")
        return cols | ({self.label: batch[self.label]} if self.label in batch else {})

    def category_ids(self, column: str, values: np.ndarray) -> np.ndarray:
        """1..n for the known values of a categorical column, 0 for unknown ones."""
        known = np.asarray([str(v) for v in self.categories[column]], dtype=object)
        v = np.asarray([str(x) for x in values], dtype=object)
        pos = np.clip(np.searchsorted(known, v), 0, max(len(known) - 1, 0))
        hit = known[pos] == v if len(known) else np.zeros(len(v), bool)
        return np.where(hit, pos + 1, 0).astype(np.int64)

    # ------------------------------------------------------------------ target
    def encode_target(self, values: np.ndarray) -> np.ndarray:
        """Class ids (int64) or the scaled regression target (float32)."""
        if self.task == "classification":
            assert self.classes is not None
            classes = np.asarray(self.classes)
            ids = np.searchsorted(classes, values)
            ids = np.clip(ids, 0, len(classes) - 1)
            unknown = classes[ids] != values
            if unknown.any():
                raise DataError(
                    f"data.label: value {values[unknown][0]!r} was not seen when the "
                    f"preprocessor was fitted; known: {self.classes}"
                )
            return ids.astype(np.int64)
        return ((np.asarray(values, np.float64) - self.target_center) / self.target_scale).astype(np.float32)

    def decode_target(self, y: np.ndarray) -> np.ndarray:
        """Back to label values (class ids → labels; scaled target → original units)."""
        if self.task == "classification":
            return np.asarray(self.classes)[y]
        return y * self.target_scale + self.target_center

    @property
    def num_outputs(self) -> int:
        return len(self.classes) if self.task == "classification" and self.classes else 1

    # ------------------------------------------------------------------ save
    def save(self, directory: str | Path) -> Path:
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        path = d / STATE_FILE
        state = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "tokenizer"}
        artifacts.write_text(path, json.dumps(state, indent=2, default=_json_default))
        if self.tokenizer is not None:
            from raydl.data.text import save_tokenizer

            save_tokenizer(self.tokenizer, d)
        artifacts.seal(d)
        return path

    @classmethod
    def load(cls, directory: str | Path) -> Preprocessor:
        """The preprocessor saved in ``directory`` (a run's ``preprocessor/``).

        Raises:
            DataError: there is none, or it is not a raydl preprocessor state.
        """
        path = Path(directory) / STATE_FILE
        if not path.is_file():
            raise DataError(f"{directory}: no {STATE_FILE}; did the run's data stage finish?")
        artifacts.verify(directory)
        state = json.loads(path.read_text())
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(state) - known)
        if unknown:
            raise DataError(f"{path}: written by another raydl version (unknown keys {', '.join(unknown)})")
        if state.get("text_column") is not None:
            from raydl.data.text import load_tokenizer

            state["tokenizer"] = load_tokenizer(Path(directory))
        return cls(**state)


def _plain(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    raise TypeError(f"{type(o).__name__} is not JSON serializable")
