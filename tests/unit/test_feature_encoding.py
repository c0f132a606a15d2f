"""The fitted table preprocessing as pure functions (no Ray): categorical encodings,
unknown categories, PCA, and the JSON round trip serving relies on."""

import numpy as np

from raydl.data.balance import class_weights
from raydl.data.preprocess import Preprocessor


def table_preprocessor(**kw) -> Preprocessor:
    base = dict(
        task="classification",
        label="y",
        feature_columns=["a", "color", "city"],
        input_shape=[4],
        scaling="robust",
        center=[10.0],
        scale=[4.0],
        classes=[0, 1],
        categorical_columns=["color", "city"],
        categories={"color": ["blue", "red"], "city": ["a", "b", "c"]},
        onehot=["color"],
    )
    return Preprocessor(**(base | kw))


def test_onehot_low_and_ids_for_high_cardinality_with_unknown_values(tmp_path):
    pre = table_preprocessor(input_shape=[4])
    batch = {
        "a": np.array([10.0, 14.0, 6.0]),
        "color": np.array(["red", "blue", "green"], dtype=object),  # green: unseen
        "city": np.array(["c", "zz", "a"], dtype=object),
        "y": np.array([0, 1, 0]),
    }
    out = pre(batch)
    # a (robust-scaled), color one-hot, then city's id for an embedding: 0 unknown, 1..n known
    np.testing.assert_allclose(out["x"], [[0, 0, 1, 3], [1, 1, 0, 0], [-1, 0, 0, 1]])
    assert set(out) == {"x", "y"}
    pre.save(tmp_path)
    again = Preprocessor.load(tmp_path)
    assert again == pre
    np.testing.assert_allclose(again(batch)["x"], out["x"])


def test_ordinal_puts_ids_in_x_and_pca_projects():
    pre = table_preprocessor(onehot=[], ordinal_in_x=True, input_shape=[3])
    batch = {"a": np.array([14.0]), "color": np.array(["red"]), "city": np.array(["b"]), "y": np.array([1])}
    np.testing.assert_allclose(pre(batch)["x"], [[1.0, 2.0, 2.0]])
    assert "ids" not in pre(batch)
    pca = table_preprocessor(
        onehot=[], ordinal_in_x=True, input_shape=[1], pca_mean=[1.0, 0.0, 0.0], pca_components=[[0, 0, 1]]
    )
    np.testing.assert_allclose(pca(batch)["x"], [[2.0]])


def test_class_weights_favour_the_rare_class():
    w = class_weights({"0": 90, "1": 10}, [0, 1])
    assert w[1] == 9 * w[0]
    assert abs(w[0] * 90 + w[1] * 10 - 100) < 1e-9  # mean weight over rows is 1


def test_mlp_embeds_the_trailing_id_columns():
    import torch

    from raydl.models import build_model

    model = build_model("mlp", (4,), 2, {"hidden": [8]}, {"id_cardinalities": [4]})
    x = torch.tensor([[0.0, 0.0, 1.0, 3.0], [1.0, 1.0, 0.0, 0.0]])
    assert model(x).shape == (2, 2)
    (table,) = [m for m in model.modules() if isinstance(m, torch.nn.Embedding)]
    assert table.num_embeddings == 4 and table.embedding_dim == 2  # ~half the categories
    # the id column goes through the table: changing only the id changes the output
    other = x.clone()
    other[0, 3] = 1.0
    assert not torch.allclose(model(other)[0], model(x)[0]) and torch.equal(model(other)[1], model(x)[1])
