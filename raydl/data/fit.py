"""Fitting the preprocessing on the train split, on Ray Data: scaling (moments and quantile
sketches per block, merged here), categories, the regression target's scaling, PCA, and
a text column's tokenizer.

Each fit starts from a :class:`~raydl.data.preprocess.Preprocessor` that already holds
the cleaning fitted on the same rows (gap fills, clip bounds: :mod:`raydl.data.repair`),
and fits its statistics on the rows as that preprocessor parses, clips and fills them —
what the model will see.
"""

from __future__ import annotations

from dataclasses import replace
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np

from raydl.data.columns import TENSOR_COLUMN
from raydl.data.preprocess import Preprocessor
from raydl.data.stats import column_stats
from raydl.data.text import data_info, fit_tokenizer, texts_of
from raydl.errors import DataError

if TYPE_CHECKING:
    import ray

    from raydl.spec import TextSpec


def _pca(x: np.ndarray) -> dict[str, np.ndarray]:
    return {"n": np.array([len(x)]), "s": x.sum(0)[None], "xx": (x.T @ x)[None]}


def _encoded(batch: dict[str, np.ndarray], pre: Preprocessor) -> dict[str, np.ndarray]:
    x = pre.features(batch).astype(np.float64)
    x = x.reshape(len(x), -1)
    return _pca(x[:, : x.shape[1] - len(pre.id_columns)])  # embedding ids are not projected


def fit_table(
    train: ray.data.Dataset,
    base: Preprocessor,
    *,
    numeric: list[str],
    categorical: list[str],
    encoding: str,
    max_onehot: int,
    pca: int | None,
    image_shape: list[int] | None = None,
) -> Preprocessor:
    """Fit a table's preprocessing on the train split: scaling of the numeric columns
    (one distributed pass of moments and quantile sketches), the categories of the
    others, the regression target's scaling, then an optional PCA (a second pass that
    sums x^T x of the encoded rows). ``base`` holds the task, label, classes, scaling
    and the cleaning fitted on these rows.

    Raises:
        DataError: the train split is empty, or PCA asks for more components than features.
    """
    task, label, scaling = base.task, base.label, base.scaling
    target = [label] if task == "regression" else []
    parsing = replace(base, feature_columns=numeric + categorical, categorical_columns=categorical)
    cleaned = train.map_batches(parsing.clean_columns, batch_format="numpy")
    stats = column_stats(cleaned, numeric + target, counts=categorical)
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
    pre = replace(
        parsing,
        input_shape=shape,
        center=center,
        scale=scale,
        target_center=stats[label].mean if target else 0.0,
        target_scale=(stats[label].std or 1.0) if target else 1.0,
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


def _moments(batch: dict[str, np.ndarray], pre: Preprocessor, target: str | None) -> dict[str, np.ndarray]:
    """Per-channel (images) or per-element (other tensors) count, sum, sum of squares,
    min, max and bad values; with ``target``, the same three sums of the regression target."""
    x = pre.raw_pixels(batch).astype(np.float64)
    x = np.moveaxis(x, 1, -1).reshape(-1, x.shape[1]) if x.ndim == 4 else x.reshape(len(x), -1)
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


def fit_tensor(
    train: ray.data.Dataset,
    base: Preprocessor,
    *,
    tensor_shape: tuple[int, ...],
    image_shape: list[int] | None,
) -> Preprocessor:
    """Fit the scaling of a tensor column or of decoded images on the train split (one
    distributed pass of per-block moments, summed here): per channel for images
    ``(C, H, W)``, per element for other tensors; and the regression target's scaling.

    Raises:
        DataError: missing or non-finite values, or an image shape that does not fit.
    """
    scaling = base.scaling
    if scaling == "robust":
        raise DataError("data.features.numeric: robust scaling is for table features; use standard or minmax")
    shape = list(image_shape or tensor_shape)
    if int(np.prod(shape)) != int(np.prod(tensor_shape)):
        raise DataError(f"data.image.shape: {shape} does not hold {list(tensor_shape)} values")
    # decoding reads the image size from input_shape; a tensor is checked against its size
    reading = replace(base, feature_columns=None, input_shape=list(tensor_shape))
    parts = train.map_batches(
        partial(_moments, pre=reading, target=base.label if base.task == "regression" else None),
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
        names = [f"{TENSOR_COLUMN}[{i}]" for i in range(len(bad))]
        where = ", ".join(f"{names[i]} ({int(bad[i])})" for i in np.flatnonzero(bad)[:5])
        raise DataError(f"data: {int(bad.sum())} missing or non-finite values in the train split: {where}")
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
    if base.task == "regression":
        yn = sum(int(p["yn"]) for p in parts)
        target_center = sum(float(p["ys"]) for p in parts) / yn
        var = sum(float(p["yss"]) for p in parts) / yn - target_center**2
        target_scale = float(np.sqrt(max(var, 0.0))) or 1.0
    return replace(
        base,
        feature_columns=None,
        input_shape=shape,
        center=[float(v) for v in center],
        scale=[float(v) for v in scale],
        target_center=target_center,
        target_scale=target_scale,
    )


def fit_text_preprocessor(train: ray.data.Dataset, base: Preprocessor, *, text: TextSpec) -> Preprocessor:
    """``base`` (task, label, classes, the text column and its gap fill) with a tokenizer
    fitted on the train split's texts, as the preprocessor reads them: ``x`` is
    ``text.max_length`` token ids of ``text.column``."""
    texts = None
    if text.tokenizer.type != "pretrained":
        texts = texts_of(train.map_batches(base.clean_columns, batch_format="numpy"), text.column)
    tok = fit_tokenizer(text, texts or [])
    return replace(
        base,
        feature_columns=None,
        input_shape=[text.max_length],
        scaling="none",
        text_column=text.column,
        data_info=data_info(tok),
        tokenizer=tok,
    )


def base_preprocessor(**state: Any) -> Preprocessor:
    """The unfitted preprocessor a fit starts from: what the spec and the source say."""
    return Preprocessor(feature_columns=None, input_shape=[], **state)
