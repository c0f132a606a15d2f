"""``data.augment``: train-only augmentation steps, one class per step, chosen by ``type``.

Steps are applied in the training loop to train batches only, after preprocessing
(images are already normalized), freshly drawn every epoch (:mod:`raydl.data.augment`).
Which input each step works on is declared in :data:`raydl.catalog.AUGMENTS`.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from raydl.spec.base import Section


class _ImageAug(Section):
    p: float = Field(0.5, ge=0, le=1, description="Probability that an image is transformed.")


class HFlipAug(_ImageAug):
    type: Literal["hflip"] = Field(description="Flip images left to right.")


class VFlipAug(_ImageAug):
    type: Literal["vflip"] = Field(description="Flip images upside down.")


class RotateAug(_ImageAug):
    type: Literal["rotate"] = Field(description="Rotate images by a random angle.")
    degrees: float = Field(10.0, gt=0, le=180, description="Largest rotation either way, in degrees.")


class ResizedCropAug(_ImageAug):
    type: Literal["resized_crop"] = Field(
        description="Crop a random part of the image and resize it back to the image's size."
    )
    p: float = Field(1.0, ge=0, le=1, description="Probability that an image is transformed.")
    scale: tuple[float, float] = Field((0.8, 1.0), description="Range of the crop's share of the area.")
    ratio: tuple[float, float] = Field((0.75, 4 / 3), description="Range of the crop's aspect ratio.")


class BrightnessAug(_ImageAug):
    type: Literal["brightness"] = Field(description="Scale the brightness by a random factor.")
    amount: float = Field(0.2, gt=0, lt=1, description="Brightness factor drawn from 1 ± amount.")


class ContrastAug(_ImageAug):
    type: Literal["contrast"] = Field(description="Scale the contrast by a random factor.")
    amount: float = Field(0.2, gt=0, lt=1, description="Contrast factor drawn from 1 ± amount.")


class GaussianNoiseAug(_ImageAug):
    type: Literal["gaussian_noise"] = Field(description="Add Gaussian noise to every pixel.")
    std: float = Field(0.1, gt=0, description="Noise standard deviation (in normalized units).")


class GaussianBlurAug(_ImageAug):
    type: Literal["gaussian_blur"] = Field(description="Blur with a Gaussian kernel of random sigma.")
    kernel_size: int = Field(3, ge=3, description="Odd kernel side, in pixels.")
    sigma: tuple[float, float] = Field((0.1, 2.0), description="Range of the blur's sigma.")


class CutoutAug(_ImageAug):
    type: Literal["cutout"] = Field(description="Erase a random square of each image.")
    size: int = Field(description="Side of the square erased (set to the mean, 0), in pixels.", ge=1)


class MixUpAug(Section):
    type: Literal["mixup"] = Field(
        description="Blend random pairs of rows and their labels (any float input; classification)."
    )
    alpha: float = Field(0.2, gt=0, description="Mixing weights drawn from Beta(alpha, alpha).")


class CutMixAug(Section):
    type: Literal["cutmix"] = Field(
        description="Paste a patch of another image, labels mixed by the patch's area (classification)."
    )
    alpha: float = Field(1.0, gt=0, description="Patch area drawn from Beta(alpha, alpha).")
    p: float = Field(1.0, ge=0, le=1, description="Probability that an image is mixed.")


class RandomDeletionAug(Section):
    type: Literal["random_deletion"] = Field(description="Delete random tokens of a text (EDA).")
    p: float = Field(0.1, gt=0, lt=1, description="Probability that each token is deleted.")


class RandomSwapAug(Section):
    type: Literal["random_swap"] = Field(description="Swap random pairs of tokens of a text (EDA).")
    n: int = Field(1, ge=1, description="Swaps of two random tokens per text.")


class RandomInsertionAug(Section):
    type: Literal["random_insertion"] = Field(
        description="Insert copies of random tokens of a text at random places (EDA)."
    )
    n: int = Field(1, ge=1, description="Copies of a random token of the text inserted at random places.")


AugmentStep = Annotated[
    HFlipAug
    | VFlipAug
    | RotateAug
    | ResizedCropAug
    | BrightnessAug
    | ContrastAug
    | GaussianNoiseAug
    | GaussianBlurAug
    | CutoutAug
    | MixUpAug
    | CutMixAug
    | RandomDeletionAug
    | RandomSwapAug
    | RandomInsertionAug,
    Field(discriminator="type"),
]
