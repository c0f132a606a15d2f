"""Give a freshly built architecture the layer widths of a structurally pruned one: the
named parameters and buffers take the saved shapes (so the pruned state dict loads), and
the layers the width attributes that go with them. Used to serve a pruned model and to
fine-tune it in a Ray Train worker, without pickling the pruned module."""

from __future__ import annotations

from typing import Any

from raydl.errors import RaydlError

# the attributes that describe a layer's width, by the parameter whose shape they follow
_WIDTHS = {
    "Linear": (("out_features", 0), ("in_features", 1)),
    "Conv1d": (("out_channels", 0),),
    "Conv2d": (("out_channels", 0),),
    "BatchNorm1d": (("num_features", 0),),
    "BatchNorm2d": (("num_features", 0),),
    "LayerNorm": (),
}


def resize(model: Any, shapes: dict[str, list[int]]) -> None:
    """Give the named parameters and buffers the saved (pruned) shapes, and the layers
    the widths that go with them, so that a structurally pruned state dict loads."""
    import torch

    modules = dict(model.named_modules())
    for name, shape in shapes.items():
        owner, _, attr = name.rpartition(".")
        module = modules.get(owner)
        if module is None or not hasattr(module, attr):
            raise RaydlError(f"recipe.shapes: {name!r} is not a tensor of this architecture")
        old = getattr(module, attr)
        new = torch.empty(shape, dtype=old.dtype)
        if isinstance(old, torch.nn.Parameter):
            setattr(module, attr, torch.nn.Parameter(new, requires_grad=old.requires_grad))
        else:
            module.register_buffer(attr, new)
        if attr == "weight":
            kind = type(module).__name__
            for width, dim in _WIDTHS.get(kind, ()):
                setattr(module, width, shape[dim])
            if kind.startswith("Conv"):
                module.in_channels = shape[1] * module.groups
            if kind == "LayerNorm":
                module.normalized_shape = tuple(shape)
