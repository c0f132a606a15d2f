"""What every spec section shares: unknown keys are errors, and a name field can be
checked against its component family."""

from __future__ import annotations

from typing import Any

from pydantic import AfterValidator, BaseModel, ConfigDict

from raydl.registry import Registry


class Section(BaseModel):
    """Base of every spec section: unknown keys are errors, assignments are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def registered(registry: Registry[Any]) -> AfterValidator:
    """A field validator: the name must be one of ``registry``'s (or user code,
    ``module:function``, which is imported to check it). Known names import nothing."""

    def check(name: str | None) -> str | None:
        if name is not None:
            problem = registry.check(name)
            if problem:
                raise ValueError(problem)
        return name

    return AfterValidator(check)
