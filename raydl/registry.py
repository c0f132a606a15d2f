"""One tiny registry used by every component family (sources, models, losses, optimizers,
schedulers, metrics, augment steps, strategies, search algorithms, …).

A family names its members without importing them: :mod:`raydl.catalog` *declares* each
name with the module that implements it (and the facts the spec checks need, such as a
builtin dataset's label), and that module *registers* the member when it is imported
(``@MODELS.register("cnn")``). :meth:`Registry.get` imports the module on first use, so
loading and checking a spec costs no torch or Ray import.

A name is either declared/registered or a ``module:function`` path to user code. Unknown
names are answered with the close matches and the full list.
"""

from __future__ import annotations

import difflib
import importlib
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, cast

from raydl.errors import RaydlError

T = TypeVar("T")


class RegistryError(RaydlError):
    """An unknown or duplicate component name."""


def did_you_mean(name: str, choices: list[str]) -> str:
    """``"did you mean 'cnn'? "`` when a choice is close to ``name``, else ``""``."""
    close = difflib.get_close_matches(name, choices, n=3, cutoff=0.6)
    if not close:
        return ""
    return "did you mean " + " or ".join(repr(c) for c in close) + "? "


@dataclass(frozen=True)
class Declared:
    """A member known by name before its module is imported."""

    module: str  # imported on first use; it registers the member
    info: Any = None  # facts about the member that need no import (a dataclass of the family's)


class Registry(Generic[T]):
    """Maps names to the members of one component family (builders, definitions)."""

    def __init__(self, family: str):
        self.family = family
        self._items: dict[str, T] = {}
        self._declared: dict[str, Declared] = {}

    def declare(self, name: str, module: str, info: Any = None) -> None:
        """Name a member that ``module`` registers when it is imported; ``info`` is what
        the member is (task, label, …) for checks that must not import it.

        Raises:
            RegistryError: the name is declared twice or contains ':'.
        """
        self._check_name(name)
        if name in self._declared:
            raise RegistryError(
                f"{self.family} {name!r} is already declared (in {self._declared[name].module})"
            )
        self._declared[name] = Declared(module, info)

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: register ``obj`` under ``name``; a second use of a name is refused, and
        a declared name only by the module it was declared in."""

        def decorator(obj: T) -> T:
            if name in self._items:
                raise RegistryError(
                    f"{self.family} {name!r} is already registered (by {_where(self._items[name])})"
                )
            self._check_name(name)
            declared = self._declared.get(name)
            if declared is not None and _module_of(obj) not in (None, declared.module):
                raise RegistryError(
                    f"{self.family} {name!r} belongs to {declared.module}; {_where(obj)} cannot register it"
                )
            self._items[name] = obj
            return obj

        return decorator

    def _check_name(self, name: str) -> None:
        if ":" in name:
            raise RegistryError(f"{self.family} names may not contain ':' (got {name!r})")

    def names(self) -> list[str]:
        """Every declared or registered name, sorted; imports nothing."""
        return sorted(self._declared.keys() | self._items.keys())

    def __contains__(self, name: object) -> bool:
        return name in self._declared or name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def get(self, name: str) -> T:
        """The member ``name`` (its module imported on first use), or user code named
        ``module:function``.

        Raises:
            RegistryError: the name is unknown, or the user code cannot be imported.
        """
        if ":" in name:
            return cast(T, load_user_object(name, self.family))
        if name not in self._items:
            declared = self._declared.get(name)
            if declared is None:
                raise RegistryError(self.unknown_message(name))
            importlib.import_module(declared.module)
            if name not in self._items:  # a bug: the catalog and the module disagree
                raise RuntimeError(f"{declared.module} did not register {self.family} {name!r}")
        return self._items[name]

    def info(self, name: str) -> Any:
        """The declared facts of ``name`` (None when it declared none); imports nothing.

        Raises:
            RegistryError: the name is unknown.
        """
        if name in self._declared:
            return self._declared[name].info
        if name in self._items:
            return None
        raise RegistryError(self.unknown_message(name))

    def unknown_message(self, name: str) -> str:
        return (
            f"unknown {self.family} {name!r}; {did_you_mean(name, self.names())}"
            f"available: {', '.join(self.names())} (or 'module:function' for your own)"
        )

    def check(self, name: str) -> str | None:
        """The problem with ``name`` as one message, or None when it resolves. A known
        name is not imported; user code (``module:function``) is."""
        if ":" not in name:
            return None if name in self else self.unknown_message(name)
        try:
            self.get(name)
        except RegistryError as e:
            return str(e)
        return None


def _module_of(obj: object) -> str | None:
    module = getattr(obj, "__module__", None)
    return module if isinstance(module, str) else None


def _where(obj: object) -> str:
    return f"{_module_of(obj)}.{getattr(obj, '__qualname__', type(obj).__qualname__)}"


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
