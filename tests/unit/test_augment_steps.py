"""Augmentation without Ray: kornia image steps, MixUp/CutMix soft labels, text EDA on
token ids, seeding, and the spec rules."""

import pytest
import torch

from raydl.data.augment import build_augment, random_deletion, random_insertion, random_swap
from raydl.errors import RaydlError, SpecError
from raydl.spec import DataSpec, validate_spec

IMAGE_STEPS = [
    {"type": "hflip", "p": 1.0},
    {"type": "vflip", "p": 1.0},
    {"type": "rotate", "degrees": 30, "p": 1.0},
    {"type": "resized_crop", "scale": [0.5, 0.6]},
    {"type": "brightness", "amount": 0.5, "p": 1.0},
    {"type": "contrast", "amount": 0.5, "p": 1.0},
    {"type": "gaussian_noise", "std": 0.5, "p": 1.0},
    {"type": "gaussian_blur", "kernel_size": 3, "p": 1.0},
    {"type": "cutout", "size": 4, "p": 1.0},
]


def steps(*raw):
    return DataSpec.model_validate(
        {"source": {"type": "builtin", "name": "digits"}, "augment": list(raw)}
    ).augment


def augment(raw, shape=(1, 8, 8), classes=4, info=None):
    return build_augment(steps(*raw), shape, classes, info or {})


@pytest.mark.parametrize("step", IMAGE_STEPS, ids=[s["type"] for s in IMAGE_STEPS])
def test_image_step_keeps_shape_changes_pixels_and_repeats_by_seed(step):
    x = torch.randn(6, 1, 8, 8)
    y = torch.arange(6) % 4
    aug = augment([step])
    aug.start_epoch(seed=1, epoch=0, rank=0)
    out, out_y = aug(x, y)
    assert out.shape == x.shape and torch.equal(out_y, y)
    assert not torch.allclose(out, x)
    aug.start_epoch(seed=1, epoch=0, rank=0)
    assert torch.equal(aug(x, y)[0], out)  # same seed, epoch, rank: the same batch
    if step["type"] not in ("hflip", "vflip"):  # a flip with p=1 has nothing random
        aug.start_epoch(seed=1, epoch=1, rank=0)
        assert not torch.equal(aug(x, y)[0], out)  # fresh every epoch


def test_cutout_erases_a_square_of_the_given_size():
    x = torch.ones(3, 1, 8, 8)
    out, _ = augment([{"type": "cutout", "size": 3, "p": 1.0}])(x, torch.zeros(3, dtype=torch.long))
    assert ((out == 0).sum(dim=(1, 2, 3)) == 9).all()


def constant_images(batch=8, side=16):
    # image i is filled with the value i, and its class is i: a pixel tells its source
    return torch.arange(batch).float().view(batch, 1, 1, 1).expand(batch, 1, side, side).contiguous()


@pytest.mark.parametrize("kind", ["mixup", "cutmix"])
def test_mixed_labels_are_the_pixel_shares_of_their_sources(kind):
    x, y = constant_images(), torch.arange(8)
    aug = augment([{"type": kind, "alpha": 1.0}], shape=(1, 16, 16), classes=8)
    aug.start_epoch(3, 0, 0)
    out, soft = aug(x, y)
    assert soft.shape == (8, 8) and soft.dtype == torch.float32
    torch.testing.assert_close(soft.sum(1), torch.ones(8))
    assert (soft > 0).sum(1).le(2).all() and (soft < 1).any()  # some rows mixed, of two sources
    values = torch.arange(8).float()
    if kind == "mixup":  # each pixel is the label-weighted blend of the sources
        torch.testing.assert_close(out[:, 0, 0, 0], soft @ values)
    else:  # each source's share of the pixels is its label weight
        share = torch.stack([(out == v).float().mean(dim=(1, 2, 3)) for v in values], dim=1)
        torch.testing.assert_close(share, soft)


def test_mixup_after_cutmix_keeps_labels_a_distribution_and_ce_takes_them():
    aug = augment([{"type": "cutmix"}, {"type": "mixup", "alpha": 0.4}], shape=(1, 16, 16), classes=8)
    x, soft = aug(constant_images(), torch.arange(8))
    torch.testing.assert_close(soft.sum(1), torch.ones(8))
    logits = torch.randn(8, 8, requires_grad=True)
    torch.nn.CrossEntropyLoss(label_smoothing=0.1)(logits, soft).backward()
    assert logits.grad is not None


def test_mixup_works_on_flat_features():
    aug = augment([{"type": "mixup"}], shape=(5,), classes=3)
    x, soft = aug(torch.randn(10, 5), torch.arange(10) % 3)
    assert x.shape == (10, 5) and soft.shape == (10, 3)


def test_augmentation_leaves_the_models_random_stream_alone():
    aug = augment([{"type": "rotate", "p": 1.0}, {"type": "mixup"}])
    x = torch.randn(4, 1, 8, 8)
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    out, _ = aug(x, torch.arange(4))
    assert not torch.equal(out, x)
    assert torch.equal(torch.rand(3), expected)


def test_image_step_on_flat_input_is_refused():
    with pytest.raises(
        RaydlError, match=r"data.augment\[1\]: 'rotate' needs images \(C, H, W\), but the input is \[64\]"
    ):
        augment([{"type": "mixup"}, {"type": "rotate"}], shape=(64,))
    with pytest.raises(RaydlError, match=r"data.augment\[0\]: cutout size 9 does not fit an image of 8x8"):
        augment([{"type": "cutout", "size": 9}])


# ------------------------------------------------------------------------ text
PAD = 0
X = torch.tensor(
    [
        [5, 6, 7, 8, 9, PAD, PAD, PAD],
        [11, 12, 13, 14, 15, 16, 17, 18],
        [21, PAD, PAD, PAD, PAD, PAD, PAD, PAD],
    ]
)


def tokens(row):
    return [t for t in row.tolist() if t != PAD]


def test_random_deletion_keeps_order_pads_right_and_never_empties():
    torch.manual_seed(0)
    out = random_deletion(X, PAD, p=0.5)
    for before, after in zip(X, out):
        kept = tokens(after)
        assert 1 <= len(kept) <= len(tokens(before))
        assert kept == [t for t in tokens(before) if t in kept]  # a subsequence, in order
        assert after.tolist()[len(kept) :] == [PAD] * (8 - len(kept))
    assert sum(len(tokens(r)) for r in out) < sum(len(tokens(r)) for r in X)
    assert tokens(random_deletion(X, PAD, p=0.99)[2]) == [21]


def test_random_swap_permutes_tokens_within_the_text():
    torch.manual_seed(1)
    out = random_swap(X, PAD, n=3)
    for before, after in zip(X, out):
        assert sorted(tokens(after)) == sorted(tokens(before))
        assert after.tolist()[len(tokens(before)) :] == before.tolist()[len(tokens(before)) :]
    assert not torch.equal(out, X)


def test_random_insertion_copies_a_token_of_the_same_text():
    torch.manual_seed(2)
    out = random_insertion(X, PAD, n=2)
    assert len(tokens(out[0])) == 7 and set(tokens(out[0])) <= set(tokens(X[0]))
    assert len(tokens(out[1])) == 8 and set(tokens(out[1])) <= set(tokens(X[1]))  # full: stays 8
    assert tokens(out[2]) == [21, 21, 21]


def test_text_steps_chain_and_keep_the_shape():
    aug = augment(
        [{"type": "random_deletion", "p": 0.2}, {"type": "random_swap"}, {"type": "random_insertion"}],
        shape=(8,),
        info={"pad_id": PAD},
    )
    aug.start_epoch(0, 0, 0)
    out, y = aug(X, torch.tensor([0, 1, 2]))
    assert out.shape == X.shape and out.dtype == torch.int64 and y.tolist() == [0, 1, 2]


def test_spec_rules_for_augmentation():
    def problems(data):
        raw = {"name": "t", "data": {"label": "target", **data}, "model": {"arch": "mlp"}}
        with pytest.raises(SpecError) as e:
            validate_spec(raw)
        return e.value.problems

    digits = {"type": "builtin", "name": "digits"}
    assert problems({"source": digits, "augment": [{"type": "random_swap"}]}) == [
        "data.augment[0]: 'random_swap' works on token ids; it needs data.text"
    ]
    assert problems({"source": digits, "augment": [{"type": "gaussian_blur", "kernel_size": 4}]}) == [
        "data.augment[0].kernel_size: must be odd, got 4"
    ]
    (typo, key) = problems(
        {"source": digits, "augment": [{"type": "rotaet"}, {"type": "rotate", "degres": 3}]}
    )
    assert (
        typo.startswith("data.augment[0]: must be one of 'hflip', 'vflip', 'rotate'")
        and "got 'rotaet'" in typo
    )
    assert key == "data.augment[1].degres: unknown key; did you mean 'degrees'? allowed: degrees, p, type"
    diabetes = {"source": {"type": "builtin", "name": "diabetes"}, "task": "regression"}
    assert problems({**diabetes, "augment": [{"type": "mixup"}]}) == [
        "data.augment[0]: 'mixup' mixes class labels; it needs data.task: classification"
    ]
