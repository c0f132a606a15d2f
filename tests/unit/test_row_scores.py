"""Per-row scores of models that answer with a loss rather than a label (a VAE, a language
model): the Predictor's rows add up to what evaluation reported before, batch by batch."""

import numpy as np
import pytest
import torch

from raydl.backends import TorchBackend
from raydl.data.preprocess import Preprocessor
from raydl.models import build_model
from raydl.predict import Predictor
from raydl.train import objectives


def test_vae_rows_are_its_objective_per_example():
    torch.manual_seed(0)
    model = build_model("vae", (1, 8, 8), 2, {"latent": 4, "hidden": [16]}).eval()
    pre = Preprocessor(
        task="classification", label="y", feature_columns=None, input_shape=[1, 8, 8], scaling="none"
    )
    p = Predictor(pre, TorchBackend(model, pre.task))
    x = np.random.default_rng(0).normal(size=(6, 1, 8, 8)).astype(np.float32)
    answers = p.predict([{"x": row} for row in x])
    assert set(answers[0]) == {"loss", "reconstruction_error"}
    with torch.no_grad():
        t = torch.from_numpy(x)
        mean = float(model.objective(t, model(t)))  # what evaluation's test_loss averaged
    assert np.mean([a["loss"] for a in answers]) == pytest.approx(mean, rel=1e-5)
    assert all(0 < a["reconstruction_error"] <= a["loss"] + 1e-6 for a in answers)


def test_language_model_rows_weigh_up_to_the_mean_next_token_loss():
    torch.manual_seed(0)
    info = {"vocab_size": 20, "pad_id": 0, "max_length": 8}
    model = build_model("gpt2", (8,), 1, {"dim": 16, "layers": 1, "heads": 2, "dropout": 0.0}, info).eval()
    x = torch.tensor([[3, 4, 5, 6, 0, 0, 0, 0], [7, 8, 9, 10, 11, 12, 13, 14], [2, 3, 0, 0, 0, 0, 0, 0]])
    with torch.no_grad():
        loss, tokens = objectives.row_next_token_loss(model, x)
        whole = float(objectives.next_token_loss(model(x), x, 0))  # over every non-pad target
    assert tokens.tolist() == [3, 7, 1]
    assert float((loss * tokens).sum() / tokens.sum()) == pytest.approx(whole, rel=1e-5)
