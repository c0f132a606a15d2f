"""Every zoo model trains a few steps on tiny data through the training step's own
objective (:func:`raydl.train.objectives.forward_loss`, what the loop calls) and its loss
falls; the loop's metric function reports perplexity for the language model."""

import math

import numpy as np
import pytest
import torch

from raydl.errors import RaydlError
from raydl.models import build_model
from raydl.models.vae import sample
from raydl.spec import LossSpec, OptimizerSpec
from raydl.train.loop import _global_metrics
from raydl.train.objectives import forward_loss
from raydl.train.optim import LOSSES, OPTIMIZERS

RNG = np.random.default_rng(0)
TEXT = {"vocab_size": 20, "pad_id": 0, "max_length": 8}


def _images(n=64):
    y = RNG.integers(0, 2, n)
    x = RNG.normal(0, 0.3, (n, 1, 8, 8)).astype("float32")
    x[y == 1, :, :4] += 1.0  # class 1: bright top half
    return [{"x": a, "y": int(b)} for a, b in zip(x, y, strict=True)]


def _float_sequences(n=64):
    y = RNG.integers(0, 2, n)
    x = RNG.normal(0, 1, (n, 6, 3)).astype("float32")
    x[:, :, 0] += np.where(y == 1, 1.0, -1.0)[:, None]
    return [{"x": a, "y": int(b)} for a, b in zip(x, y, strict=True)]


def _token_rows(n=64):
    # class 1 sequences contain token 5, class 0 never; trailing padding of varied length
    y = RNG.integers(0, 2, n)
    rows = []
    for label in y:
        length = int(RNG.integers(4, 9))
        ids = RNG.integers(6, 20, length)
        if label:
            ids[RNG.integers(0, length)] = 5
        rows.append({"x": np.pad(ids, (0, 8 - length)).astype("int64"), "y": int(label)})
    return rows


def _lm_rows(n=64):
    # counting sequences modulo the vocabulary (ids 1..19): the next token is predictable
    starts = RNG.integers(1, 20, n)
    return [{"x": ((s - 1 + np.arange(8)) % 19 + 1).astype("int64")} for s in starts]


CASES = {
    "resnet": ((1, 8, 8), {"widths": [8, 16], "blocks": [1, 1]}, _images, "classification"),
    "resnet18": ((1, 8, 8), {"width": 4}, _images, "classification"),
    "mobilenet": ((1, 8, 8), {"width": 0.25}, _images, "classification"),
    "vit": ((1, 8, 8), {"patch": 4, "dim": 16, "depth": 1, "heads": 2}, _images, "classification"),
    "lstm": ((6, 3), {"hidden": 16}, _float_sequences, "classification"),
    "gru": ((8,), {"hidden": 16, "embed_dim": 16, "bidirectional": True}, _token_rows, "classification"),
    "bert": (
        (8,),
        {"hidden": 32, "layers": 1, "heads": 2, "intermediate": 64, "dropout": 0.0},
        _token_rows,
        "classification",
    ),
    "gpt2": ((8,), {"dim": 32, "layers": 1, "heads": 2, "dropout": 0.0}, _lm_rows, "language_modeling"),
    "vae": ((1, 8, 8), {"latent": 4, "hidden": [32]}, _images, "classification"),
}


def _rows_to_batches(rows, batch_size=16):
    for i in range(0, len(rows), batch_size):
        chunk = rows[i : i + batch_size]
        x = torch.from_numpy(np.stack([r["x"] for r in chunk]))
        y = torch.tensor([r["y"] for r in chunk]) if "y" in chunk[0] else None
        yield x, y


def _mean_loss(model, rows, loss_fn, task):
    model.eval()
    with torch.no_grad():
        losses = [
            float(forward_loss(model, x, y, loss_fn, task)[1]) * len(x) for x, y in _rows_to_batches(rows)
        ]
    return sum(losses) / len(rows)


@pytest.fixture(autouse=True)
def _one_thread():
    # tiny models: one thread avoids oversubscribing a shared 2-core machine
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("arch", list(CASES))
def test_zoo_model_loss_falls(arch):
    shape, params, make, task = CASES[arch]
    torch.manual_seed(0)
    # data_info as text data passes it; float data has none
    model = build_model(arch, shape, 2, params, TEXT if make in (_token_rows, _lm_rows) else {})
    rows = make()
    opt = OPTIMIZERS.get("adam")(model.parameters(), OptimizerSpec(type="adam", lr=3e-3))
    loss_fn = LOSSES.get("cross_entropy")(LossSpec())
    before = _mean_loss(model, rows, loss_fn, task)
    for _ in range(8):
        model.train()
        for x, y in _rows_to_batches(rows):
            opt.zero_grad()
            forward_loss(model, x, y, loss_fn, task)[1].backward()
            opt.step()
    after = _mean_loss(model, rows, loss_fn, task)
    assert after < 0.8 * before, (before, after)
    if task == "language_modeling":
        sums = {"loss": after * len(rows), "hits": 0, "abs": 0, "sq": 0, "rows": len(rows)}
        metrics = _global_metrics("val", sums, task, torch.device("cpu"))
        assert metrics["val_perplexity"] == pytest.approx(math.exp(after))
        assert metrics["val_perplexity"] < math.exp(before)
    if arch == "vae":
        drawn = sample(model, 5, seed=1)
        assert drawn.shape == (5, 1, 8, 8) and torch.isfinite(drawn).all()
        assert torch.equal(drawn, sample(model, 5, seed=1))


def test_text_data_info_reaches_builders_unless_params_set_it():
    model = build_model("gru", (8,), 2, {"embed_dim": 4}, TEXT)
    assert model.embed.num_embeddings == 20
    model = build_model("gru", (8,), 2, {"embed_dim": 4, "vocab_size": 30}, TEXT)
    assert model.embed.num_embeddings == 30
    # a builder without those parameters is built as before
    assert build_model("mlp", (8,), 2, {}, TEXT)(torch.randn(3, 8)).shape == (3, 2)


def test_token_models_say_what_they_need():
    with pytest.raises(RaydlError, match="needs token ids"):
        build_model("bert", (8,), 2, {})
    with pytest.raises(RaydlError, match="token ids .set vocab_size. or .T, F. float"):
        build_model("lstm", (8,), 2, {})
