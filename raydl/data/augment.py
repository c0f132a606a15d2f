"""Train-time augmentation: ``data.augment`` becomes one batched torch function
``augment(x, y) -> (x, y)`` that the training loop applies to train batches only.

Images: kornia (flips, rotation, random resized crop, brightness, contrast, Gaussian
noise and blur, CutOut as kornia's RandomErasing, CutMix). MixUp is drawn here because
kornia's MixUp samples its weight uniformly, not from Beta(alpha, alpha) as the paper
does. Text: EDA's random deletion, swap and insertion, on the token ids after
tokenization (so on word pieces, not words; the pad token is never moved or inserted).
Steps run in the order the spec lists them, on normalized tensors. Each step is a member
of :data:`raydl.catalog.AUGMENTS` (which says what input it takes and whether it mixes
labels), registered here by its ``type``.

MixUp and CutMix turn the labels into soft targets, float ``(B, classes)``, which the
cross-entropy loss takes as they are. Randomness comes from a generator state of its own,
seeded by ``seed``, epoch and rank, so batches differ every epoch and runs repeat, and the
model's own random stream (dropout) is left alone.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from raydl.catalog import AUGMENTS
from raydl.errors import RaydlError

Step = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


# ------------------------------------------------------------------------ images
# A step's builder: (the spec's step, one input's shape, the preprocessor's data_info) → Step.
def _kornia_step(make: Callable[[Any, Sequence[int]], torch.nn.Module]) -> Callable[..., Step]:
    """A builder of a kornia module applied to the images, labels passed through."""

    def build(step: Any, shape: Sequence[int], data_info: dict[str, Any]) -> Step:
        return _image_step(make(step, shape))

    return build


def _register_kornia(name: str, make: Callable[[Any, Sequence[int]], torch.nn.Module]) -> None:
    AUGMENTS.register(name)(_kornia_step(make))


def _k() -> Any:
    import kornia.augmentation as K

    return K


_register_kornia("hflip", lambda step, shape: _k().RandomHorizontalFlip(p=step.p))
_register_kornia("vflip", lambda step, shape: _k().RandomVerticalFlip(p=step.p))
_register_kornia("rotate", lambda step, shape: _k().RandomRotation(degrees=step.degrees, p=step.p))
_register_kornia(
    "resized_crop",
    lambda step, shape: _k().RandomResizedCrop(
        (int(shape[1]), int(shape[2])), scale=step.scale, ratio=step.ratio, p=step.p
    ),
)
# Inputs are normalized (mean 0), not in [0, 1]: kornia must not clip them.
_register_kornia(
    "brightness",
    lambda step, shape: _k().RandomBrightness(
        (1 - step.amount, 1 + step.amount), clip_output=False, p=step.p
    ),
)
_register_kornia(
    "contrast",
    lambda step, shape: _k().RandomContrast((1 - step.amount, 1 + step.amount), clip_output=False, p=step.p),
)
_register_kornia("gaussian_noise", lambda step, shape: _k().RandomGaussianNoise(std=step.std, p=step.p))
_register_kornia(
    "gaussian_blur", lambda step, shape: _k().RandomGaussianBlur(step.kernel_size, step.sigma, p=step.p)
)


def _cutout(step: Any, shape: Sequence[int]) -> torch.nn.Module:
    """A size × size square set to 0, the mean of normalized pixels."""
    area = step.size**2 / (shape[1] * shape[2])
    if area >= 1:
        raise RaydlError(f"cutout size {step.size} does not fit an image of {shape[1]}x{shape[2]}")
    return _k().RandomErasing(scale=(area, area), ratio=(1.0, 1.0), value=0.0, p=step.p)


_register_kornia("cutout", _cutout)


def _image_step(module: torch.nn.Module) -> Step:
    def apply(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return module(x), y

    return apply


@AUGMENTS.register("cutmix")
def _cutmix_step(step: Any, shape: Sequence[int], data_info: dict[str, Any]) -> Step:
    return _cutmix(step.alpha, step.p)


def _cutmix(alpha: float, p: float) -> Step:
    import kornia.augmentation as K

    # use_correct_lambda: lambda is the share of the image's own pixels (checked in tests)
    module = K.RandomCutMixV2(beta=alpha, p=p, data_keys=["input", "class"], use_correct_lambda=True)

    def apply(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # Row indices stand in for the labels: kornia answers (i, partner of i, lambda),
        # which mixes soft labels that earlier steps may already have mixed.
        rows = torch.arange(len(x), device=x.device)
        x, mix = module(x, rows)  # mix: (1, B, 3)
        i, j, lam = mix[0, :, 0].long(), mix[0, :, 1].long(), mix[0, :, 2:3].to(y.dtype)
        return x, lam * y[i] + (1 - lam) * y[j]

    return apply


@AUGMENTS.register("mixup")
def _mixup_step(step: Any, shape: Sequence[int], data_info: dict[str, Any]) -> Step:
    if data_info.get("id_cardinalities"):
        raise RaydlError(
            "mixup would blend the integer ids of the categorical columns encoded for an "
            "embedding; use categorical: ordinal, a larger max_onehot, or no mixup"
        )
    return _mixup(step.alpha)


def _mixup(alpha: float) -> Step:
    beta = torch.distributions.Beta(torch.tensor([alpha]), torch.tensor([alpha]))

    def apply(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        lam = beta.sample((len(x),)).to(x.device)  # (B, 1): one weight per row
        j = torch.randperm(len(x), device=x.device)
        lx = lam.view(-1, *([1] * (x.dim() - 1)))
        return lx * x + (1 - lx) * x[j], lam.to(y.dtype) * y + (1 - lam.to(y.dtype)) * y[j]

    return apply


# -------------------------------------------------------------------------- text
def _lengths(x: torch.Tensor, pad_id: int) -> torch.Tensor:
    return (x != pad_id).sum(1)  # right padding: tokens are x[:, :length]


def random_deletion(x: torch.Tensor, pad_id: int, p: float) -> torch.Tensor:
    """Drop each token with probability ``p`` (at least one stays), close the gaps, pad."""
    B, L = x.shape
    pos = torch.arange(L, device=x.device).expand(B, L)
    real = x != pad_id
    keep = real & (torch.rand(B, L, device=x.device) >= p)
    keep[:, 0] |= ~keep.any(1) & real[:, 0]  # never delete a whole text
    order = torch.argsort(torch.where(keep, pos, pos + L), dim=1)  # kept tokens first, in order
    out = torch.gather(x, 1, order)
    return torch.where(pos < keep.sum(1, keepdim=True), out, torch.full_like(out, pad_id))


def random_swap(x: torch.Tensor, pad_id: int, n: int) -> torch.Tensor:
    """Swap two random tokens of each text, ``n`` times."""
    B, _ = x.shape
    n_tok = _lengths(x, pad_id).clamp(min=1)
    rows = torch.arange(B, device=x.device)
    out = x.clone()
    for _ in range(n):
        i = (torch.rand(B, device=x.device) * n_tok).long()
        j = (torch.rand(B, device=x.device) * n_tok).long()
        a, b = out[rows, i].clone(), out[rows, j].clone()
        out[rows, i], out[rows, j] = b, a
    return out


def random_insertion(x: torch.Tensor, pad_id: int, n: int) -> torch.Tensor:
    """Insert a copy of a random token of each text at a random place, ``n`` times; the
    text stays ``max_length`` long (its last token falls off when it is full)."""
    B, L = x.shape
    rows = torch.arange(B, device=x.device)
    pos = torch.arange(L, device=x.device).expand(B, L)
    out = x.clone()
    for _ in range(n):
        n_tok = _lengths(out, pad_id)
        has = n_tok > 0
        src = (torch.rand(B, device=x.device) * n_tok.clamp(min=1)).long()
        token = out[rows, src]
        at = (torch.rand(B, device=x.device) * (n_tok + 1).clamp(max=L)).long()  # 0..n_tok
        at_ = at[:, None]
        shifted = torch.gather(out, 1, torch.where(pos > at_, pos - 1, pos))
        inserted = torch.where(pos == at_, token[:, None], shifted)
        out = torch.where(has[:, None], inserted, out)
    return out


def _text_step(fn: Callable[[torch.Tensor, int, Any], torch.Tensor], arg: str) -> Callable[..., Step]:
    """A builder of ``fn(ids, pad_id, step.<arg>)`` on the token ids, labels passed through."""

    def build(step: Any, shape: Sequence[int], data_info: dict[str, Any]) -> Step:
        pad_id, value = int(data_info.get("pad_id", 0)), getattr(step, arg)

        def apply(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return fn(x, pad_id, value), y

        return apply

    return build


AUGMENTS.register("random_deletion")(_text_step(random_deletion, "p"))
AUGMENTS.register("random_swap")(_text_step(random_swap, "n"))
AUGMENTS.register("random_insertion")(_text_step(random_insertion, "n"))


# ------------------------------------------------------------------------- build
def _seeded_state(seed: int, epoch: int, rank: int) -> torch.Tensor:
    """The generator state of one epoch on one rank."""
    return torch.Generator().manual_seed(seed * 1_000_003 + epoch * 1009 + rank).get_state()


class Augment:
    """The spec's steps as one function of a batch, with its own random stream.

    Call :meth:`start_epoch` before each epoch; then ``augment(x, y)`` for every train
    batch. ``y`` comes back as soft targets float ``(B, classes)`` when a step mixes.
    """

    def __init__(self, steps: list[Step], mixes: bool, num_classes: int):
        self.steps, self.mixes, self.num_classes = steps, mixes, num_classes
        self._state: torch.Tensor | None = None

    def start_epoch(self, seed: int, epoch: int, rank: int) -> None:
        self._state = _seeded_state(seed, epoch, rank)

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        state = self._state if self._state is not None else _seeded_state(0, 0, 0)
        if self.mixes:
            y = F.one_hot(y.long(), self.num_classes).float()
        # kornia draws from torch's global generator: swap in ours for the duration, so
        # augmentation is reproducible and the model's dropout stream is untouched.
        with torch.random.fork_rng(devices=[]):
            torch.set_rng_state(state)
            for step in self.steps:
                x, y = step(x, y)
            self._state = torch.get_rng_state()
        return x, y


def build_augment(
    steps: Sequence[Any], input_shape: Sequence[int], num_classes: int, data_info: dict[str, Any]
) -> Augment | None:
    """The augmentation of ``data.augment`` for inputs of ``input_shape``; None when empty.

    Raises:
        RaydlError: an image step on input that is not an image ``(C, H, W)``.
    """
    if not steps:
        return None
    built: list[Step] = []
    for i, step in enumerate(steps):
        if AUGMENTS.info(step.type).input == "image" and len(input_shape) != 3:
            raise RaydlError(
                f"data.augment[{i}]: {step.type!r} needs images (C, H, W), but the input is "
                f"{list(input_shape)}; set data.image.shape to view feature columns as images"
            )
        try:
            built.append(AUGMENTS.get(step.type)(step, input_shape, data_info))
        except RaydlError as e:
            raise RaydlError(f"data.augment[{i}]: {e}") from e
    mixes = any(AUGMENTS.info(s.type).mixes for s in steps)
    return Augment(built, mixes, num_classes)
