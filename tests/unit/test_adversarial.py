"""Adversarial training's batches (raydl.train.adversarial) and its spec rules (raydl.checks)."""

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from raydl.errors import SpecError
from raydl.spec import validate_spec
from raydl.train.adversarial import AdversarialBatches


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Flatten(), nn.Linear(16, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Dropout(0.5), nn.Linear(8, 3)
    )


def test_the_first_share_of_the_batch_moves_by_epsilon_against_the_loss_and_the_rest_stays():
    net = _net().train()
    x, y = torch.randn(10, 1, 4, 4), torch.randint(0, 3, (10,))
    stats = net[2].running_mean.clone()
    out = AdversarialBatches(net, F.cross_entropy, epsilon=0.25, share=0.4)(x, y)
    assert out.shape == x.shape and out.dtype == x.dtype
    moved = (out - x).abs()
    assert torch.allclose(moved[:4][moved[:4] > 0], torch.tensor(0.25)) and (moved[:4] > 0).any()
    assert torch.equal(out[4:], x[4:])  # round(0.4 * 10) = 4 rows replaced, the others untouched
    net.eval()
    with torch.no_grad():  # each crafted row raises its own loss (one sign step of a smooth loss)
        before = F.cross_entropy(net(x[:4]), y[:4], reduction="none")
        after = F.cross_entropy(net(out[:4]), y[:4], reduction="none")
    assert (after > before).all()
    # crafting touched no parameter's gradient, no batch-norm statistic, and left train mode on
    assert all(p.grad is None for p in net.parameters())
    assert torch.equal(net[2].running_mean, stats)
    net.train()
    AdversarialBatches(net, F.cross_entropy, epsilon=0.25, share=0.4)(x, y)
    assert net.training


def test_soft_targets_after_mixup_and_a_share_that_rounds_to_no_row():
    net = _net()
    x = torch.randn(4, 1, 4, 4)
    soft = F.softmax(torch.randn(4, 3), -1)
    loss = lambda out, t: -(t * F.log_softmax(out, -1)).sum(-1).mean()  # noqa: E731
    out = AdversarialBatches(net, loss, epsilon=0.1, share=1.0)(x, soft)
    assert not torch.equal(out, x)
    assert torch.equal(AdversarialBatches(net, loss, epsilon=0.1, share=0.1)(x, soft), x)


def _spec(**train):
    return {
        "name": "adv",
        "data": {"source": {"type": "builtin", "name": "digits"}, "label": "target"},
        "model": {"arch": "cnn"},
        "train": {"adversarial": {"epsilon": 0.3}, **train},
    }


def test_an_adversarial_section_is_typed_with_defaults_and_bounds():
    a = validate_spec(_spec()).train.adversarial
    assert (a.epsilon, a.share) == (0.3, 0.5)
    with pytest.raises(SpecError) as e:
        validate_spec(_spec(adversarial={"epsilon": 0, "share": 1.5}))
    assert sorted(line.split(":")[0] for line in e.value.lines()) == [
        "train.adversarial.epsilon",
        "train.adversarial.share",
    ]


@pytest.mark.parametrize(
    ("change", "says"),
    [
        (
            {
                "data": {
                    "source": {"type": "builtin", "name": "diabetes"},
                    "label": "target",
                    "task": "regression",
                },
                "model": {"arch": "mlp"},
            },
            "data.task is regression",
        ),
        (
            {
                "data": {
                    "source": {"type": "builtin", "name": "bbc_news"},
                    "label": "label",
                    "text": {"column": "text"},
                },
                "model": {"arch": "embedding_bag"},
            },
            "text token ids",
        ),
        ({"train": {"adversarial": {}, "strategy": "deepspeed"}}, "train.strategy: ddp"),
    ],
)
def test_what_fgsm_cannot_perturb_is_refused_in_one_line(change, says):
    raw = {**_spec(), **change}
    raw["train"] = {"adversarial": {}, **change.get("train", {})}
    with pytest.raises(SpecError) as e:
        validate_spec(raw)
    (line,) = e.value.lines()
    assert line.startswith("train.adversarial: ") and says in line, line
