"""Text on a real local Ray: the tokenizer sees the train split only, rows become token
ids by a Ray Data map, and the BBC News job trains, saves its tokenizer and answers raw
articles, read from the corpus files, through the Predictor exactly as its evaluation
did — without Ray."""

import json
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest

import raydl
from raydl.data.prepare import prepare_data
from raydl.data.sources import bbc_news_dir
from raydl.errors import DataError
from raydl.spec import validate_spec
from tests.predictions import check_exact

pytestmark = pytest.mark.integration

TOPICS = ["cats", "boats", "trains"]


def text_spec(path, **text):
    return validate_spec(
        {
            "name": "t",
            "data": {
                "source": {"type": "csv", "path": str(path)},
                "label": "topic",
                "text": {"column": "body", "max_length": 16, **text},
                "split": {"method": "random", "val": 0.2, "test": 0.2},
            },
            "model": {"arch": "embedding_bag"},
        }
    )


def test_tokenizer_is_trained_on_the_train_split_only(ray_cluster, tmp_path):
    # Each row carries its own made-up word three times: a word becomes one token of the
    # trained vocabulary exactly when its row is in the train split.
    words = [f"zq{chr(97 + i // 26)}{chr(97 + i % 26)}vex" for i in range(120)]
    frame = pd.DataFrame(
        {
            "body": [f"{w} {w} {w} about {TOPICS[i % 3]}" for i, w in enumerate(words)],
            "topic": np.arange(120) % 3,
        }
    )
    path = tmp_path / "t.csv"
    frame.to_csv(path, index=False)
    prepared = prepare_data(
        text_spec(path, tokenizer={"type": "bpe", "vocab_size": 5000, "min_frequency": 2})
    )
    pre = prepared.preprocessor
    assert pre.input_shape == [16] and pre.data_info["max_length"] == 16 and pre.data_info["pad_id"] == 0

    rows = {}
    for name, ds in prepared.datasets.items():
        batches = list(ds.iter_batches(batch_format="numpy"))
        x = np.concatenate([b["x"] for b in batches])
        assert x.dtype == np.int64 and x.shape[1] == 16
        rows[name] = {tuple(r) for r in x}
    vocab = pre.tokenizer.get_vocab()
    in_vocab = {name: 0 for name in rows}
    for w in words:
        ids = tuple(pre.features({"body": np.array([f"{w} {w} {w} about {TOPICS[words.index(w) % 3]}"])})[0])
        (split,) = [name for name in rows if ids in rows[name]]
        in_vocab[split] += f"{w}</w>" in vocab
    n = prepared.report["split"]["rows"]
    assert in_vocab == {"train": n["train"], "val": 0, "test": 0}


def test_text_column_that_is_not_text(ray_cluster, tmp_path):
    path = tmp_path / "n.csv"
    pd.DataFrame({"body": np.arange(30), "topic": np.arange(30) % 2}).to_csv(path, index=False)
    with pytest.raises(DataError, match="data.text.column: column 'body' holds int64, not text"):
        prepare_data(text_spec(path))


def test_bbc_news_job_trains_a_tokenizer_and_a_classifier(bbc_run):
    m = bbc_run.metrics
    assert m["accuracy"] >= 0.75  # 5 topics: chance is about 0.2
    assert m["classes"] == ["business", "entertainment", "politics", "sports", "tech"]
    run = bbc_run.run_dir
    state = json.loads((run / "preprocessor" / "preprocessor.json").read_text())
    assert state["data_info"]["max_length"] == 256 and state["text_column"] == "text"
    assert 1000 < state["data_info"]["vocab_size"] <= 8000
    assert json.loads((run / "checkpoints/best/model.json").read_text())["data_info"] == state["data_info"]


def test_bbc_news_articles_from_their_files_reproduce_the_run(bbc_run):
    saved = np.load(bbc_run.run_dir / "predictions.npz")
    root = bbc_news_dir()  # the test articles, named topic/NNN.txt, read as the source reads them
    texts = [(root / name).read_bytes().decode("utf-8", errors="replace") for name in saved["id"]]
    check_exact(raydl.Predictor.from_run(bbc_run.run_dir), [{"text": t} for t in texts], bbc_run.run_dir)


def test_bbc_news_predictor_loads_and_answers_without_ray(bbc_run):
    code = textwrap.dedent(f"""
        import sys
        sys.modules["ray"] = None
        import raydl
        p = raydl.Predictor.from_run({str(bbc_run.run_dir)!r})
        answers = p.predict([
            {{"text": "The striker scored twice and the club won the cup final at the stadium."}},
            {{"text": "Shares in the bank fell as profits dropped and the market reacted to rates."}},
        ])
        print(" ".join(a["label"] for a in answers))
        model = raydl.load_model({str(bbc_run.run_dir)!r})  # the lower-level loaders still work
        pre = raydl.load_preprocessor({str(bbc_run.run_dir)!r})
        print(type(model).__name__, pre.text_column)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[0].split() == ["sports", "business"]
    assert out.stdout.splitlines()[1].endswith(" text")
