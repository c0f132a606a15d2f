"""``model:``: the architecture, its parameters, and pretrained weights."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, GetJsonSchemaHandler, ValidationError, model_validator
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import InitErrorDetails, PydanticCustomError, core_schema

from raydl.catalog import MODELS
from raydl.registry import did_you_mean
from raydl.spec.base import Section, registered
from raydl.spec.model_params import ARCH_PARAMS


class PretrainedSpec(Section):
    path: str | None = Field(None, description="Local path of pretrained weights.")
    freeze: list[str] = Field(
        default_factory=list,
        description="Glob patterns of parameter names to freeze, e.g. 'encoder.*' (each must match).",
    )
    unfreeze_at: int | None = Field(
        None, ge=1, description="Epoch (1-based) from which the frozen parameters train too."
    )


class ModelSpec(Section):
    arch: Annotated[str, registered(MODELS)] = Field(
        description="A registered model (mlp, cnn, …) or 'module:function'."
    )
    params: dict[str, Any] = Field(
        default_factory=dict,
        description="Keyword arguments of the model's builder; each registered arch's are listed "
        "(with defaults) under its <Arch>Params definition.",
    )
    pretrained: PretrainedSpec = Field(
        default_factory=PretrainedSpec, description="Pretrained weights and which parameters to freeze."
    )

    @model_validator(mode="after")
    def _params_fit_arch(self) -> ModelSpec:
        """A registered arch's params are validated by its params class; ``params`` keeps
        what the user wrote (the builder supplies the defaults)."""
        schema = ARCH_PARAMS.get(self.arch)
        if schema is None:  # user code: checked against its signature by raydl.checks
            return self
        try:
            schema.model_validate(self.params)
        except ValidationError as e:
            raise ValidationError.from_exception_data(
                "ModelSpec", [_params_error(self.arch, schema, err) for err in e.errors()]
            ) from None
        return self

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        """The JSON Schema says which params each arch takes: ``if arch is X then params
        is XParams`` (editors complete and check them)."""
        json_schema = handler(schema)
        target = handler.resolve_ref_schema(json_schema)
        target["allOf"] = [
            {
                "if": {"properties": {"arch": {"const": arch}}, "required": ["arch"]},
                "then": {
                    "properties": {
                        "params": {
                            **handler(params.__pydantic_core_schema__),
                            "description": f"Keyword arguments of the {arch} builder.",
                        }
                    }
                },
            }
            for arch, params in ARCH_PARAMS.items()
        ]
        return json_schema


def _params_error(arch: str, schema: type[Section], err: Any) -> InitErrorDetails:
    """One error of ``arch``'s params class, located under ``params``; an unknown key
    names the parameters the arch takes."""
    loc = ("params", *err["loc"])
    if err["type"] == "extra_forbidden":
        allowed = list(schema.model_fields)
        key = str(err["loc"][-1])
        message = (
            f"unknown parameter of model {arch!r}; {did_you_mean(key, allowed)}allowed: {', '.join(allowed)}"
        )
        return InitErrorDetails(
            type=PydanticCustomError("value_error", "{message}", {"message": message}),
            loc=loc,
            input=err["input"],
        )
    return InitErrorDetails(type=err["type"], loc=loc, input=err["input"], ctx=err.get("ctx", {}))
