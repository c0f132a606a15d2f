"""One tiny registry used by every component family (sources, models, losses, optimizers,
schedulers, metrics).

A name is either registered (``@MODELS.register("cnn")``) or a ``module:function`` path
to user code. Unknown names are answered with the close matches and the full list.
"""

from __future__ import annotations

import difflib
import importlib
import os
import sys
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from raydl.errors import RaydlError

T = TypeVar("T", bound=Callable)


class RegistryError(RaydlError):
    """An unknown or duplicate component name."""


def did_you_mean(name: str, choices: list[str]) -> str:
    """``"did you mean 'cnn'? "`` when a choice is close to ``name``, else ``""``."""
    close = difflib.get_close_matches(name, choices, n=3, cutoff=0.6)
    if not close:
        return ""
    return "did you mean " + " or ".join(repr(c) for c in close) + "? "


class Registry(Generic[T]):
    """Maps names to builder functions for one component family."""

    def __init__(self, family: str):
        self.family = family
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: register ``fn`` under ``name``; a second use of a name is refused."""

        def decorator(fn: T) -> T:
            if name in self._items:
                raise RegistryError(
                    f"{self.family} {name!r} is already registered "
                    f"(by {self._items[name].__module__}.{self._items[name].__qualname__})"
                )
            if ":" in name:
                raise RegistryError(f"{self.family} names may not contain ':' (got {name!r})")
            self._items[name] = fn
            return fn

        return decorator

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def get(self, name: str) -> T:
        """The builder for ``name``, or user code named ``module:function``.

        Raises:
            RegistryError: the name is unknown, or the user code cannot be imported.
        """
        if ":" in name:
            return load_user_object(name, self.family)  # type: ignore[return-value]
        try:
            return self._items[name]
        except KeyError:
            raise RegistryError(self.unknown_message(name)) from None

    def unknown_message(self, name: str) -> str:
        return (
            f"unknown {self.family} {name!r}; {did_you_mean(name, self.names())}"
            f"available: {', '.join(self.names())} (or 'module:function' for your own)"
        )

    def check(self, name: str) -> str | None:
        """The problem with ``name`` as one message, or None when it resolves."""
        try:
            self.get(name)
        except RegistryError as e:
            return str(e)
        return None


def load_user_object(path: str, family: str = "object") -> Callable:
    """Import ``module:attr`` (``attr`` may be dotted) and return it; it must be callable.

    The working directory is searched too, so ``mymodels:build`` finds ./mymodels.py.
    """
    module_name, _, attr = path.partition(":")
    if not module_name or not attr:
        raise RegistryError(f"{family} {path!r}: expected 'module:function'")
    # Like `python -m` and uvicorn: modules in the working directory are importable.
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        obj: object = importlib.import_module(module_name)
    except ImportError as e:
        raise RegistryError(f"{family} {path!r}: cannot import module {module_name!r} ({e})") from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise RegistryError(f"{family} {path!r}: module {module_name!r} has no {attr!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise RegistryError(f"{family} {path!r}: {attr!r} is not callable")
    return obj
