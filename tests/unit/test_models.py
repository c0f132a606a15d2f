import pytest
import torch

from raydl.errors import RaydlError
from raydl.models import MODELS, build_model, check_params


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32), (1, 8, 8)])
def test_cnn_sizes_itself_from_image_shape(shape):
    model = build_model("cnn", shape, 10, {"channels": [8, 16, 32]})
    assert model(torch.randn(4, *shape)).shape == (4, 10)


@pytest.mark.parametrize("shape", [(1, 8, 8), (1, 28, 28)])
def test_mobilenet_works_on_the_images_cnn_works_on(shape):
    model = build_model("mobilenet", shape, 10, {"width": 0.25})
    assert model(torch.randn(2, *shape)).shape == (2, 10)


def test_mobilenet_width_thins_every_layer():
    def params(width):
        return sum(p.numel() for p in build_model("mobilenet", (1, 8, 8), 10, {"width": width}).parameters())

    # the pointwise convolutions dominate: about width² of the parameters
    assert params(0.25) < params(0.5) < params(1.0) and params(0.5) < params(1.0) / 3
    with pytest.raises(RaydlError, match="width must be positive"):
        build_model("mobilenet", (1, 8, 8), 10, {"width": 0})


def test_mlp_flattens_any_input():
    assert build_model("mlp", (1, 8, 8), 3, {"hidden": [16]})(torch.randn(5, 1, 8, 8)).shape == (5, 3)
    assert build_model("mlp", (10,), 1, {"hidden": []})(torch.randn(5, 10)).shape == (5, 1)


def test_cnn_on_flat_rows_says_what_to_set():
    with pytest.raises(RaydlError, match="set data.image.shape"):
        build_model("cnn", (64,), 10, {})


def test_param_check_uses_builder_signature():
    assert check_params("cnn", {"channels": [8]}) == []
    (line,) = check_params("cnn", {"chanels": [8]})
    assert "did you mean 'channels'" in line
    assert check_params("no-such-model", {"x": 1}) == []
    assert set(MODELS.names()) >= {"mlp", "cnn"}
