"""Class names as the data names them, for the terminal, the report and ``errors.json``.

A table's label strings (a CSV's ``"yes"``/``"no"``, an image folder's sub-folder names)
are already names. Builtin sets whose labels are integer ids get the names their
publishers give them (Fashion-MNIST's ``"T-shirt/top"``, ``"Trouser"``, …); any other id
stays as its text (digits' ``"0"``…``"9"`` are the names).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from raydl.spec import BuiltinSource, JobSpec

# Fashion-MNIST's labels, as zalandoresearch/fashion-mnist's README names them.
FASHION_MNIST = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)

BUILTIN_NAMES: dict[str, Sequence[str]] = {"fashion_mnist": FASHION_MNIST}


def class_names(classes: Sequence[Any], builtin: str | None = None) -> list[str]:
    """The display name of each class id's value (``classes[i]`` is class id ``i``).

    ``builtin``: the builtin data set the values come from, when they are its ids (as
    integers, or as their text: a data report's keys).
    """
    names = BUILTIN_NAMES.get(builtin or "")
    out = []
    for c in classes:
        value = c.item() if hasattr(c, "item") else c
        if isinstance(value, str) and value.isdigit() and names is not None:
            value = int(value)
        if names is not None and isinstance(value, int) and 0 <= value < len(names):
            out.append(names[value])
        else:
            out.append(str(value))
    return out


def names_for(spec: JobSpec, classes: Sequence[Any] | None) -> list[str] | None:
    """The display names of a classification job's classes (None for other tasks)."""
    if spec.data.task != "classification" or not classes:
        return None
    src = spec.data.source
    return class_names(classes, src.name if isinstance(src, BuiltinSource) else None)


def names_by_value(spec: JobSpec, classes: Sequence[Any] | None) -> dict[str, str]:
    """``{str(value): name}``: a data report's class keys to their display names."""
    return dict(zip(map(str, classes or []), names_for(spec, classes) or []))
