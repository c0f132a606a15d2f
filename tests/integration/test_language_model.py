"""Language modelling through the spec on a real local Ray: BBC News texts become rows of
token ids only (a BPE tokenizer trained on the train split), a tiny GPT-2 learns next
tokens, and evaluation reports test loss and perplexity instead of class metrics."""

import json
import math

import pytest
import torch

import raydl
from raydl.spec import load_spec

pytestmark = pytest.mark.integration

VOCAB = 1000


def test_tiny_gpt2_on_bbc_news_perplexity_falls(ray_cluster, tmp_path, repo_root):
    spec = load_spec(
        f"{repo_root}/jobs/bbc_news_gpt2.yaml",
        [
            "data.source.limit=400",
            "data.text.max_length=32",
            f"data.text.tokenizer.vocab_size={VOCAB}",
            "model.params={dim: 32, layers: 2, heads: 2, dropout: 0.0}",
            "train.epochs=4",
            "train.batch_size=8",
            "train.workers=1",
            "train.cpus_per_worker=1",
        ],
    )
    result = raydl.run(spec, runs_root=tmp_path)
    epochs = [json.loads(line) for line in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    ppl = [e["val_perplexity"] for e in epochs]
    assert len(ppl) == 4 and all(math.isfinite(p) for p in ppl)
    assert ppl[-1] < ppl[0]
    assert epochs[-1]["train_loss"] < epochs[0]["train_loss"]
    m = result.metrics
    # next-token loss over the held-out test articles' tokens, and its exponential
    assert m["perplexity"] == pytest.approx(math.exp(m["test_loss"]))
    assert m["n"] == 40 and m["tokens"] > 40 * 20
    # well below a uniform guess over the vocabulary (perplexity = VOCAB)
    assert math.isfinite(m["perplexity"]) and m["perplexity"] < VOCAB / 2
    assert "accuracy" not in m and not (result.run_dir / "errors.json").exists()
    # the saved model reloads without Ray and predicts the vocabulary at each position
    logits = raydl.load_model(result.run_dir)(torch.zeros(2, 32, dtype=torch.long))
    assert logits.shape == (2, 32, VOCAB)
