"""``tracking:``: Weights & Biases and TensorBoard."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from raydl.spec.base import Section


class WandbSpec(Section):
    project: str = Field("raydl", description="The W&B project.")
    mode: Literal["online", "offline", "disabled"] = Field(
        "offline",
        description="offline: the run lands in RUN/wandb/ (send it later with `wandb sync`); "
        "online needs a W&B login and network.",
    )


class TrackingSpec(Section):
    wandb: WandbSpec | None = Field(None, description="Log each epoch and the resolved spec to W&B.")
    tensorboard: bool = Field(False, description="Write TensorBoard event files to RUN/tensorboard/.")
