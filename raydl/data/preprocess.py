"""The fitted preprocessing state: feature scaling, image reshaping, label encoding.

Fitted on the train split only, saved as JSON in the run directory and loadable without
Ray, so evaluation and serving apply exactly what training saw.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from raydl.data.columns import TENSOR_COLUMN
from raydl.errors import DataError

if TYPE_CHECKING:  # this module must load without Ray: serving and load_preprocessor use it
    import ray

    from raydl.spec import TextSpec

STATE_FILE = "preprocessor.json"


@dataclass
class Preprocessor:
    """Turns raw rows into model input ``x`` (float32) and target ``y``.

    Attributes:
        task: classification or regression.
        label: the label column of the raw rows.
        feature_columns: the table's feature columns, or None for a tensor column ``x``.
        input_shape: one example's shape after transform, e.g. ``[64]`` or ``[1, 28, 28]``.
        scaling: standard, minmax, robust or none.
        center, scale: per numeric feature (table) or per channel (tensor):
            x' = (x - center) / scale.
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
    tokenizer: Any = field(default=None, repr=False, compare=False)

    # ------------------------------------------------------------------ apply
    def features(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        """Model input for a batch of raw rows: float32 of shape (B, *input_shape), or
        int64 token ids (B, max_length) for text."""
        if self.text_column is not None:
            from raydl.data.text import encode

            return encode(self.tokenizer, batch[self.text_column])
        if self.feature_columns is None:
            x: np.ndarray = np.asarray(batch[TENSOR_COLUMN], dtype=np.float32)
            if x.ndim == 4:  # (B, C, H, W): per-channel statistics
                center = np.asarray(self.center, np.float32)[None, :, None, None]
                scale = np.asarray(self.scale, np.float32)[None, :, None, None]
            else:  # any other rank: per-element statistics over the flattened example
                x = x.reshape(len(x), -1)
                center = np.asarray(self.center, np.float32)
                scale = np.asarray(self.scale, np.float32)
        else:
            n = len(batch[self.label]) if self.label in batch else len(next(iter(batch.values())))
            cols = [np.asarray(batch[c], dtype=np.float32) for c in self.numeric_columns]
            x = np.stack(cols, axis=1) if cols else np.zeros((n, 0), np.float32)
            if self.scaling != "none":
                x = (x - np.asarray(self.center, np.float32)) / np.asarray(self.scale, np.float32)
            parts = [x]
            for c in self.categorical_columns:
                ids = self.category_ids(c, batch[c])
                if c in self.onehot:
                    parts.append(np.eye(len(self.categories[c]) + 1, dtype=np.float32)[ids][:, 1:])
                elif self.ordinal_in_x:
                    parts.append(ids[:, None].astype(np.float32))
            x = np.concatenate(parts, axis=1) if len(parts) > 1 else x
            if self.pca_components:
                components = np.asarray(self.pca_components, np.float32)  # (k, d)
                x = (x - np.asarray(self.pca_mean, np.float32)) @ components.T
            if self.id_columns:  # ids for an embedding: exact in float32 below 2**24
                id_values = [self.category_ids(c, batch[c]).astype(np.float32) for c in self.id_columns]
                x = np.concatenate([x, np.stack(id_values, axis=1)], axis=1)
            return x.reshape((len(x), *self.input_shape))
        if self.scaling != "none":
            x = (x - center) / scale
        return x.reshape((len(x), *self.input_shape))

    @property
    def numeric_columns(self) -> list[str]:
        return [c for c in self.feature_columns or [] if c not in self.categorical_columns]

    @property
    def id_columns(self) -> list[str]:
        """Categorical columns given as integer ids in the ``ids`` output (embeddings)."""
        return [] if self.ordinal_in_x else [c for c in self.categorical_columns if c not in self.onehot]

    def category_ids(self, column: str, values: np.ndarray) -> np.ndarray:
        """1..n for the known values of a categorical column, 0 for unknown ones."""
        known = np.asarray([str(v) for v in self.categories[column]], dtype=object)
        v = np.asarray([str(x) for x in values], dtype=object)
        pos = np.clip(np.searchsorted(known, v), 0, max(len(known) - 1, 0))
        hit = known[pos] == v if len(known) else np.zeros(len(v), bool)
        return np.where(hit, pos + 1, 0).astype(np.int64)

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

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Ray Data ``map_batches`` form: raw rows → ``{"x", "y"}`` (a language model's
        rows: ``{"x"}``, the token ids are their own target)."""
        if self.task == "language_modeling":
            return {"x": self.features(batch)}
        return {"x": self.features(batch), "y": self.encode_target(batch[self.label])}

    @property
    def num_outputs(self) -> int:
        return len(self.classes) if self.task == "classification" and self.classes else 1

    # ------------------------------------------------------------------ save
    def save(self, directory: str | Path) -> Path:
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        path = d / STATE_FILE
        state = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "tokenizer"}
        path.write_text(json.dumps(state, indent=2, default=_json_default))
        if self.tokenizer is not None:
            from raydl.data.text import save_tokenizer

            save_tokenizer(self.tokenizer, d)
        return path

    @classmethod
    def load(cls, directory: str | Path) -> Preprocessor:
        state = json.loads((Path(directory) / STATE_FILE).read_text())
        if state.get("text_column") is not None:
            from raydl.data.text import load_tokenizer

            state["tokenizer"] = load_tokenizer(Path(directory))
        return cls(**state)


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    raise TypeError(f"{type(o).__name__} is not JSON serializable")


# ---------------------------------------------------------------------- fit
def _moments(
    batch: dict[str, np.ndarray], columns: list[str] | None, target: str | None
) -> dict[str, np.ndarray]:
    """Per-feature (or per-channel) count, sum, sum of squares, min, max and bad values;
    with ``target``, the same three sums of the regression target."""
    if columns is None:
        x = np.asarray(batch[TENSOR_COLUMN], dtype=np.float64)
        x = np.moveaxis(x, 1, -1).reshape(-1, x.shape[1]) if x.ndim == 4 else x.reshape(len(x), -1)
    else:
        x = np.stack([np.asarray(batch[c], dtype=np.float64) for c in columns], axis=1)
    bad = ~np.isfinite(x)
    xz = np.where(bad, 0.0, x)
    y = np.asarray(batch[target], np.float64) if target else np.zeros(0)
    return {
        "yn": np.array([len(y)]),
        "ys": np.array([y.sum()]),
        "yss": np.array([(y**2).sum()]),
        "n": np.array([(~bad).sum(0)]),
        "s": np.array([xz.sum(0)]),
        "ss": np.array([(xz**2).sum(0)]),
        "min": np.array([np.where(bad, np.inf, x).min(0, initial=np.inf)]),
        "max": np.array([np.where(bad, -np.inf, x).max(0, initial=-np.inf)]),
        "bad": np.array([bad.sum(0)]),
    }


def _pca(x: np.ndarray) -> dict[str, np.ndarray]:
    return {"n": np.array([len(x)]), "s": x.sum(0)[None], "xx": (x.T @ x)[None]}


def _encoded(batch: dict[str, np.ndarray], pre: Preprocessor) -> dict[str, np.ndarray]:
    x = pre.features(batch).astype(np.float64)
    x = x.reshape(len(x), -1)
    return _pca(x[:, : x.shape[1] - len(pre.id_columns)])  # embedding ids are not projected


def fit_table(
    train: ray.data.Dataset,
    *,
    task: str,
    label: str,
    numeric: list[str],
    categorical: list[str],
    encoding: str,
    max_onehot: int,
    pca: int | None,
    scaling: str,
    classes: list[Any] | None,
    image_shape: list[int] | None = None,
) -> Preprocessor:
    """Fit a table's preprocessing on the train split: scaling of the numeric columns
    (one distributed pass of moments and quantile sketches), the categories of the
    others, the regression target's scaling, then an optional PCA (a second pass that
    sums x^T x of the encoded rows).

    Raises:
        DataError: the train split is empty, or PCA asks for more components than features.
    """
    from raydl.data.clean import column_stats

    target = [label] if task == "regression" else []
    stats = column_stats(train, numeric + target, counts=categorical)
    if target and stats[label].n == 0 or numeric and stats[numeric[0]].n == 0:
        raise DataError("data.split: the train split is empty")
    center, scale = [], []
    for c in numeric:
        st = stats[c]
        if scaling == "standard":
            lo, width = st.mean, st.std
        elif scaling == "minmax":
            lo = float(st.sketch.get_min_value())
            width = float(st.sketch.get_max_value()) - lo
        elif scaling == "robust":
            q1, lo, q3 = (float(v) for v in st.sketch.get_quantiles([0.25, 0.5, 0.75]))
            width = q3 - q1
        else:
            lo, width = 0.0, 1.0
        center.append(float(lo))
        scale.append(float(width) if width > 1e-12 else 1.0)
    categories = {c: sorted(str(v) for v in stats[c].counts or {}) for c in categorical}
    onehot = [c for c in categorical if encoding == "onehot" and len(categories[c]) <= max_onehot]
    ordinal_in_x = encoding == "ordinal"
    width = len(numeric) + sum(len(categories[c]) for c in onehot)
    width += len(categorical) - len(onehot) if ordinal_in_x else 0
    ids = [] if ordinal_in_x else [c for c in categorical if c not in onehot]
    shape = [width + len(ids)]
    if image_shape:
        if int(np.prod(image_shape)) != width or pca or ids:
            raise DataError(
                f"data.image.shape: {image_shape} holds {int(np.prod(image_shape))} values, "
                f"but there are {width} features{' before PCA' if pca else ''}"
            )
        shape = list(image_shape)
    pre = Preprocessor(
        task=task,
        label=label,
        feature_columns=numeric + categorical,
        input_shape=shape,
        scaling=scaling,
        center=center,
        scale=scale,
        classes=classes,
        target_center=stats[label].mean if target else 0.0,
        target_scale=(stats[label].std or 1.0) if target else 1.0,
        categorical_columns=categorical,
        categories=categories,
        onehot=onehot,
        ordinal_in_x=ordinal_in_x,
        data_info={"id_cardinalities": [len(categories[c]) + 1 for c in ids]} if ids else {},
    )
    if pca:
        if pca > width:
            raise DataError(f"data.features.pca: {pca} components, but there are only {width} features")
        encoded = train.map_batches(partial(_encoded, pre=pre), batch_format="numpy", batch_size=None)
        parts = encoded.take_all()
        n = sum(int(p["n"]) for p in parts)
        mean = np.sum([p["s"] for p in parts], axis=0) / n
        cov = np.sum([p["xx"] for p in parts], axis=0) / n - np.outer(mean, mean)
        values, vectors = np.linalg.eigh(cov)  # ascending
        top = vectors[:, np.argsort(values)[::-1][:pca]].T  # (k, d)
        top *= np.where(top[np.arange(pca), np.abs(top).argmax(1)] < 0, -1.0, 1.0)[:, None]  # fixed signs
        pre.pca_mean, pre.pca_components, pre.input_shape = mean.tolist(), top.tolist(), [pca + len(ids)]
    return pre


def fit_preprocessor(
    train: ray.data.Dataset,
    *,
    task: str,
    label: str,
    feature_columns: list[str] | None,
    tensor_shape: tuple[int, ...] | None,
    image_shape: list[int] | None,
    scaling: str,
    classes: list[Any] | None,
) -> Preprocessor:
    """Fit scaling on the train split with one distributed pass (per-block moments,
    summed here), and the regression target's scaling.

    Raises:
        DataError: missing or non-finite values, or an image shape that does not fit.
    """
    if scaling == "robust":
        raise DataError("data.features.numeric: robust scaling is for table features; use standard or minmax")
    if feature_columns is None:
        assert tensor_shape is not None
        shape = list(image_shape or tensor_shape)
        if int(np.prod(shape)) != int(np.prod(tensor_shape)):
            raise DataError(f"data.image.shape: {shape} does not hold {list(tensor_shape)} values")
    else:
        shape = list(image_shape) if image_shape else [len(feature_columns)]
        if int(np.prod(shape)) != len(feature_columns):
            raise DataError(
                f"data.image.shape: {shape} holds {int(np.prod(shape))} values, "
                f"but there are {len(feature_columns)} feature columns"
            )
    parts = train.map_batches(
        partial(_moments, columns=feature_columns, target=label if task == "regression" else None),
        batch_format="numpy",
        batch_size=4096,
    ).take_all()
    if not parts:
        raise DataError("data.split: the train split is empty")
    n = np.sum([p["n"] for p in parts], axis=0)
    s = np.sum([p["s"] for p in parts], axis=0)
    ss = np.sum([p["ss"] for p in parts], axis=0)
    bad = np.sum([p["bad"] for p in parts], axis=0)
    if bad.sum():
        names = feature_columns or [f"{TENSOR_COLUMN}[{i}]" for i in range(len(bad))]
        where = ", ".join(f"{names[i]} ({int(bad[i])})" for i in np.flatnonzero(bad)[:5])
        raise DataError(
            f"data: {int(bad.sum())} missing or non-finite values in the train split: {where}; "
            "clean the data (data.clean.missing other than 'error' is not implemented yet)"
        )
    mean = s / n
    std = np.sqrt(np.maximum(ss / n - mean**2, 0.0))
    lo = np.min([p["min"] for p in parts], axis=0)
    hi = np.max([p["max"] for p in parts], axis=0)
    if scaling == "standard":
        center, scale = mean, np.where(std > 1e-12, std, 1.0)
    elif scaling == "minmax":
        center, scale = lo, np.where(hi - lo > 1e-12, hi - lo, 1.0)
    else:
        center, scale = np.zeros_like(mean), np.ones_like(mean)

    target_center, target_scale = 0.0, 1.0
    if task == "regression":
        yn = sum(int(p["yn"]) for p in parts)
        target_center = sum(float(p["ys"]) for p in parts) / yn
        var = sum(float(p["yss"]) for p in parts) / yn - target_center**2
        target_scale = float(np.sqrt(max(var, 0.0))) or 1.0
    return Preprocessor(
        task=task,
        label=label,
        feature_columns=feature_columns,
        input_shape=shape,
        scaling=scaling,
        center=[float(v) for v in center],
        scale=[float(v) for v in scale],
        classes=classes,
        target_center=target_center,
        target_scale=target_scale,
    )


def fit_text_preprocessor(
    train: ray.data.Dataset, *, text: TextSpec, task: str, label: str, classes: list[Any] | None
) -> Preprocessor:
    """A preprocessor whose ``x`` is ``text.max_length`` token ids of ``text.column``."""
    from raydl.data.text import data_info, fit_tokenizer, texts_of

    tok = fit_tokenizer(text, [] if text.tokenizer.type == "pretrained" else texts_of(train, text.column))
    return Preprocessor(
        task=task,
        label=label,
        feature_columns=None,
        input_shape=[text.max_length],
        scaling="none",
        classes=classes,
        text_column=text.column,
        data_info=data_info(tok),
        tokenizer=tok,
    )
