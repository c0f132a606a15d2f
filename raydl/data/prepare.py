"""The data stage: source → row rules → splits → preprocessing fitted on train → streaming
datasets.

Returns Ray Datasets of rows ``{"x": float32 array, "y": label}`` for train, val and
test (test rows also carry their ``id`` when the source names rows); nothing is
collected to the driver but small statistics. Every statistic learnt from the data —
outlier bounds, gap fills, scaling, categories, PCA, the tokenizer — is fitted on the
train split (per fold for k-fold), and all of it lives in the fitted preprocessor.
"""

from __future__ import annotations

import contextlib
import logging
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import ray
from ray.data.dataset import MaterializedDataset

from raydl.data import rows
from raydl.data.balance import class_weights, resample, smote
from raydl.data.clean import clean
from raydl.data.columns import HASH_COLUMN
from raydl.data.fit import base_preprocessor, fit_table, fit_tensor, fit_text_preprocessor
from raydl.data.kinds import Columns, column_kinds, image_mode
from raydl.data.preprocess import Preprocessor
from raydl.data.repair import count_outliers, drop_outliers, fill_values, outlier_bounds, outlier_threshold
from raydl.data.sources import SourceInfo, read_source
from raydl.data.split import (
    SPLITS,
    SplitRule,
    count_splits,
    even_blocks,
    plan_splits,
    seeded_order,
    take_fold,
    take_split,
)
from raydl.data.stats import column_stats
from raydl.errors import DataError
from raydl.spec import JobSpec

log = logging.getLogger(__name__)
FEW_ROWS = 10  # a class with fewer rows after data.source.limit is worth a warning


@dataclass
class PreparedData:
    """The data stage's result.

    Attributes:
        datasets: train/val/test rows ``{"x", "y"}``, preprocessed.
        preprocessor: fitted on the train split.
        report: what data_report.json holds.
        spec: the job spec the data was prepared for.
        rows: the cleaned raw rows with their content hash (materialized), for folds.
        rule: the split rule that routes ``rows``.
        refit: fits a preprocessor, as the spec says, on other train rows (folds).
    """

    datasets: dict[str, ray.data.Dataset]
    preprocessor: Preprocessor
    report: dict[str, Any]
    spec: JobSpec | None = None
    rows: ray.data.Dataset | None = None
    rule: SplitRule | None = None
    refit: Callable[[ray.data.Dataset], Preprocessor] | None = None


def _should_cache(mode: str, rows: dict[str, int], input_shape: list[int]) -> list[str]:
    """The splits read every epoch (train, val) to keep preprocessed in the object store.

    Re-running the preprocessing every epoch costs CPU that, on a small machine, the
    training workers need; a cached split is only read. ``auto`` caches when the float32
    rows fill at most a quarter of the object store.
    """
    if mode == "never":
        return []
    splits = ["train", "val"]
    if mode == "always":
        return splits
    size = sum(rows[s] for s in splits) * (int(np.prod(input_shape)) + 2) * 4
    capacity = ray.cluster_resources().get("object_store_memory", 0)
    return splits if size <= capacity / 4 else []


def _balance(
    spec: JobSpec,
    train_raw: ray.data.Dataset,
    pre: Preprocessor,
    before: dict[str, int] | None,
    cached: bool,
) -> tuple[ray.data.Dataset, dict[str, Any]]:
    """The preprocessed train split, balanced as the spec says, and the class counts
    before and after (class weights change no rows: they go into ``pre``; ``before``
    gives the train class counts they need, else they are counted here).

    The workers' local shuffle buffer mixes only a few batches, so a train split that is
    cached is first put in a seeded random order (one sort, paid once); an uncached one
    would pay it every epoch, so its blocks are only visited in a random order."""

    def ordered(rows: ray.data.Dataset) -> ray.data.Dataset:
        if cached:  # a deterministic cache is cut into its equal blocks next (_cache_train)
            return seeded_order(rows, spec.seed, cut_back=not spec.train.deterministic)
        return rows.randomize_block_order(seed=spec.seed)

    how = spec.data.balance
    if how in ("oversample", "undersample"):
        rows, before, after = resample(train_raw, how, spec.data.label, spec.seed)
        return ordered(rows).map_batches(pre, batch_format="numpy"), {"before": before, "after": after}
    train = ordered(train_raw).map_batches(pre, batch_format="numpy")
    if how == "smote":
        if pre.feature_columns is None:
            raise DataError("data.balance: smote works on table features; use oversample or class_weights")
        train, before, after = smote(train, spec.seed, id_columns=len(pre.id_columns))
        return train, {"before": before, "after": after}
    if how == "class_weights":
        if before is None:
            y = np.concatenate(
                [b["y"] for b in train.select_columns(["y"]).iter_batches(batch_format="numpy")]
            )
            classes = pre.classes or []
            before = {str(classes[k]): int(n) for k, n in zip(*np.unique(y, return_counts=True))}
        pre.class_weights = class_weights(before, pre.classes or [])
    return train, {"before": before, "after": before}


@contextlib.contextmanager
def _ordered(spec: JobSpec) -> Iterator[None]:
    """``train.deterministic``: every dataset built inside keeps its blocks in order when
    it runs (a dataset keeps the Ray Data context it was built in), so a cached split
    materializes the same on every run, and a streamed one reaches training in order."""
    options = ray.data.DataContext.get_current().execution_options
    before = options.preserve_order
    options.preserve_order = before or spec.train.deterministic
    try:
        yield
    finally:
        options.preserve_order = before


def _cache_train(
    spec: JobSpec, train: ray.data.Dataset, rows: int | None = None, like: ray.data.Dataset | None = None
) -> MaterializedDataset:
    """A train split kept in the object store; deterministic: in equal blocks, so the
    workers get the same batches on every run. With its row count and a split
    preprocessed alike (``like``, the cached val split), the blocks are cut in the pass
    that computes them (:func:`even_blocks`)."""
    if not spec.train.deterministic:
        return train.materialize()
    row_bytes = like.size_bytes() / like.count() if like is not None and like.count() else None
    return even_blocks(train, rows, row_bytes)


def prepare_data(spec: JobSpec, preprocessor: Preprocessor | None = None) -> PreparedData:
    """Run the data stage of a validated spec on the connected Ray cluster.

    With ``preprocessor`` (a fitted one, from a run directory) nothing is refitted.

    Raises:
        DataError: the source is missing, or its columns are not what the spec says.
    """
    with _ordered(spec):
        return _prepare(spec, preprocessor)


def _fitter(
    spec: JobSpec, info: SourceInfo, cols: Columns, classes: list[Any] | None, clip_rule: bool
) -> Callable[[ray.data.Dataset], Preprocessor]:
    """The function that fits the whole preprocessing on some train rows (the train split,
    or a fold's): clip bounds (an outlier rule that clips), gap fills, then scaling,
    categories, PCA or the tokenizer — each on the rows as the steps before leave them."""
    data = spec.data
    mode, _ = image_mode(spec)

    def fit(train: ray.data.Dataset) -> Preprocessor:
        rule = data.clean.outliers
        clip = outlier_bounds(train, rule, cols.numeric) if clip_rule and rule is not None else {}
        base = base_preprocessor(
            task=data.task,
            label=data.label,
            scaling=data.features.numeric,
            classes=classes,
            rename=dict(getattr(data.source, "rename", None) or {}),
            source_columns=list(info.columns),
            row_id_column=info.row_id,
            fill_values=fill_values(train, data.clean, cols, clip),
            clip_bounds=clip,
            text_column=cols.text,
            image_column=cols.image,
            image_mode=mode if cols.image else None,
        )
        if data.text is not None:
            return fit_text_preprocessor(train, base, text=data.text)
        if info.tensor_shape is not None:
            return fit_tensor(
                train,
                base,
                tensor_shape=info.tensor_shape,
                image_shape=data.image.shape if data.image else None,
            )
        return fit_table(
            train,
            base,
            numeric=cols.numeric,
            categorical=cols.categorical,
            encoding=data.features.categorical,
            max_onehot=data.features.max_onehot,
            pca=data.features.pca,
            image_shape=data.image.shape if data.image else None,
        )

    return fit


def _prepare(spec: JobSpec, preprocessor: Preprocessor | None) -> PreparedData:
    data = spec.data
    ds, info = read_source(data)
    cols = column_kinds(spec, ds, info)
    mode, size = image_mode(spec)

    # One materialized pass over the source parses values and adds a content hash; the
    # row rules, the key scan and every split read it, so the source is read once.
    cleaned = clean(
        ds,
        data.clean,
        cols,
        subset=(info.subset, spec.seed) if info.subset else None,
        missing_label=data.clean.missing_label,
        image_mode=mode,
        image_size=size,
    )
    hashed = cleaned.rows
    # a language model's rows carry no label: the split reads only their content hash
    split_label = HASH_COLUMN if cols.label is None else data.label
    rule, counts = plan_splits(hashed, data.split, split_label, spec.seed, data.task)

    # -- outliers: the rule's bounds are fitted on the train split; dropping the rows
    # outside them is a row rule for every split, clipping is the preprocessor's
    steps, outliers = list(cleaned.steps), dict[str, int]()
    o = data.clean.outliers
    if o is not None:
        bounds = outlier_bounds(take_split(hashed, rule, "train"), o, cols.numeric)
        outliers, n_outlier_rows = count_outliers(hashed, bounds)
        n = sum(counts["rows"].values())
        if o.action == "drop" and n_outlier_rows:
            hashed = drop_outliers(hashed, bounds)
            counts = count_splits(hashed, rule, data.task)
        kept = sum(counts["rows"].values())
        steps.append(
            {
                "name": "outliers",
                "method": o.method,
                "threshold": outlier_threshold(o),
                "action": o.action,
                "bounds": bounds,
                "fitted_on": "train",
                "rows_in": n,
                "rows_out": kept,
                "changed": {("clipped" if o.action == "clip" else "flagged"): outliers}
                | ({"dropped_rows": n - kept} if o.action == "drop" else {}),
            }
        )
    for name, n in counts["rows"].items():
        if n == 0:
            raise DataError(f"data.split: the {name} split is empty; use more data or a larger fraction")
    classes = counts["classes"]
    warnings = _limit_warnings(spec, counts, info)
    if classes is not None and len(classes) < 2:
        only = f"only {classes[0]!r}" if classes else "no values"
        hint = f"; {warnings[0]}" if warnings else ""
        raise DataError(
            f"data.label: classification needs 2 or more classes; column {data.label!r} holds {only} "
            f"in the {sum(counts['rows'].values())} rows left{hint}"
        )
    for w in warnings:
        log.warning("%s", w)

    fit = _fitter(spec, info, cols, classes, clip_rule=o is not None and o.action == "clip")
    train_raw = take_split(hashed, rule, "train", keep_hash=True)
    preprocessor = preprocessor or fit(train_raw)
    datasets = {
        name: take_split(hashed, rule, name).map_batches(
            preprocessor.with_row_ids if name == "test" else preprocessor, batch_format="numpy"
        )
        for name in SPLITS
    }
    class_counts = counts["class_counts"]
    cached = _should_cache(data.cache, counts["rows"], preprocessor.input_shape)
    datasets["train"], balanced = _balance(
        spec, train_raw, preprocessor, class_counts["train"] if class_counts else None, "train" in cached
    )
    # the train split's feature statistics as the model sees them (clipped, filled, before
    # scaling): the report's, and the drift reference; categories by the encoder's values
    feature_stats: dict[str, Any] = {}
    category_counts: dict[str, Any] = {}
    categorical = [c for c in cols.categorical if c in preprocessor.categorical_columns]
    if cols.numeric or categorical:
        as_seen = train_raw.map_batches(preprocessor.clean_columns, batch_format="numpy")
        seen = column_stats(as_seen, cols.numeric, counts=categorical)
        feature_stats = {c: seen[c].describe() for c in cols.numeric}
        category_counts = {
            c: seen[c].describe_counts(preprocessor.categories.get(c, [])) for c in categorical
        }
    if "val" in cached:
        datasets["val"] = datasets["val"].materialize()
    if "train" in cached:
        after = balanced["after"]
        n_train = sum(after.values()) if after else counts["rows"]["train"]
        like = datasets["val"] if "val" in cached else None
        datasets["train"] = _cache_train(spec, datasets["train"], n_train, like)
    feature_columns = (cols.numeric + cols.categorical) or None
    report = {
        "source": data.source.model_dump(mode="json"),
        "rows_read": steps[0]["rows_in"],
        "rows": sum(counts["rows"].values()),
        "steps": steps,
        "duplicates": cleaned.duplicates,
        "missing": cleaned.missing,
        "missing_label": cleaned.label_gaps,
        "fill_values": preprocessor.fill_values,
        "outliers": outliers if o is not None else None,
        "fingerprint": counts["fingerprint"],
        "split": {"method": data.split.method, "seed": spec.seed, "rows": counts["rows"]}
        | ({"folds": counts["folds"]} if "folds" in counts else {}),
        "class_counts": (counts["class_counts"] | balanced) if counts["class_counts"] else None,
        "balance": data.balance,
        "features": feature_stats,
        "category_counts": category_counts,
        "input_shape": preprocessor.input_shape,
        "feature_columns": feature_columns,
        "row_id_column": info.row_id,
        "cached_splits": cached,
        "warnings": warnings,
    }
    log.info("data: %d rows → train %d, val %d, test %d", report["rows"], *counts["rows"].values())
    return PreparedData(datasets, preprocessor, report, spec, hashed, rule, fit)


def _limit_warnings(spec: JobSpec, counts: dict[str, Any], info: SourceInfo) -> list[str]:
    """What a user should hear when ``data.source.limit`` leaves a class with few rows,
    or (the first N rows) without a class the rest of the source holds."""
    src = spec.data.source
    if not src.limit or not counts["class_counts"]:
        return []
    total: Counter = Counter()
    for split in SPLITS:
        total.update(counts["class_counts"][split])
    absent = []
    if src.subset == "first":  # a builtin knows its classes; a file is read again for them
        whole = info.classes if info.classes is not None else _source_classes(spec)
        absent = sorted(set(whole) - set(total))
    few = sorted((n, c) for c, n in total.items() if n < FEW_ROWS)
    if not few and not absent and len(total) > 1:
        return []
    what = []
    if absent:
        shown = ", ".join(repr(c) for c in absent[:5]) + (", …" if len(absent) > 5 else "")
        what.append(f"hold {len(total)} of the source's {len(total) + len(absent)} classes (none of {shown})")
    if few:
        shown = ", ".join(f"{c!r} ({n})" for n, c in few[:5]) + (", …" if len(few) > 5 else "")
        what.append(f"leave {len(few)} class(es) with fewer than {FEW_ROWS} rows: {shown}")
    if not what:
        what.append("hold one class")
    hint = (
        " (the first rows of a file sorted by label hold few classes: try data.source.subset: random)"
        if src.subset == "first"
        else ""
    )
    return [f"data.source.limit: the {src.subset} {src.limit} rows {' and '.join(what)}{hint}"]


def _source_classes(spec: JobSpec) -> list[str]:
    """The label values of the whole source (its label column read again, without the
    limit), as the class counts name them."""
    data = spec.data
    whole = data.model_copy(update={"source": data.source.model_copy(update={"limit": None})})
    ds, _ = read_source(whole)
    labels = ds.select_columns([data.label]).to_pandas()[data.label]
    return sorted({str(v) for v in labels[~rows.missing(labels.to_numpy(dtype=object))]})


def fold_datasets(
    prepared: PreparedData, fold: int
) -> tuple[ray.data.Dataset, ray.data.Dataset, Preprocessor]:
    """The preprocessed (train, val) datasets of fold ``fold`` of a k-fold split, and the
    fold's preprocessor.

    val holds the rows of the fold, train the other non-test rows; the test split is in
    neither. The preprocessing is refitted on this fold's train rows (same input shape
    and classes as ``prepared.preprocessor``), so no fold sees its val rows in a fit, and
    the train rows are balanced as ``data.balance`` says. Both come back materialized:
    a fold is trained on for several epochs.

    Raises:
        DataError: the spec's split is not kfold, or ``fold`` is not in 0..k-1.
    """
    spec = prepared.spec
    assert spec is not None and prepared.rows is not None and prepared.rule is not None
    assert prepared.refit is not None  # prepare_data sets all four for a kfold split
    with _ordered(spec):
        train_raw, val_raw = take_fold(prepared.rows, prepared.rule, fold)
        pre = prepared.refit(train_raw)
        train, _ = _balance(spec, train_raw, pre, None, cached=True)
        return _cache_train(spec, train), val_raw.map_batches(pre, batch_format="numpy").materialize(), pre


def raw_rows(prepared: PreparedData, splits: tuple[str, ...] = ("train", "val")) -> pd.DataFrame:
    """The cleaned raw rows of some splits, with their content hash, gathered to the
    driver in the order of their hashes (the same on every run, whatever the blocks)."""
    assert prepared.rows is not None and prepared.rule is not None
    parts = [take_split(prepared.rows, prepared.rule, s, keep_hash=True).to_pandas() for s in splits]
    return pd.concat(parts, ignore_index=True).sort_values(HASH_COLUMN, kind="stable", ignore_index=True)


def frame_fold(
    prepared: PreparedData, train: pd.DataFrame, held_out: pd.DataFrame, refit: bool
) -> tuple[ray.data.Dataset, tuple[np.ndarray, np.ndarray], Preprocessor]:
    """A fold of raw rows (from :func:`raw_rows`): the preprocessing refitted on its train
    rows (or, without ``refit``, the train split's), its train rows preprocessed and
    balanced as the spec says (materialized), and its held-out rows' ``(x, y)``."""
    spec = prepared.spec
    assert spec is not None and prepared.refit is not None
    with _ordered(spec):
        train_raw = ray.data.from_pandas(train)
        pre = prepared.refit(train_raw) if refit else prepared.preprocessor
        balanced, _ = _balance(spec, train_raw, pre, None, cached=True)
        batch = {c: held_out[c].to_numpy() for c in held_out.columns if c != HASH_COLUMN}
        held = pre(batch)
        return _cache_train(spec, balanced), (held["x"], held["y"]), pre
