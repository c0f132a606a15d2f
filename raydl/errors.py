"""Errors a user can cause. The CLI prints them as one line each and exits with code 2;
anything else that escapes is a bug and keeps its traceback."""

from __future__ import annotations


class RaydlError(Exception):
    """An error caused by the user's input (spec, data, paths), with a message for them."""

    exit_code = 2

    def lines(self) -> list[str]:
        return [str(self)]


class SpecError(RaydlError):
    """A job spec with one or more problems; each is one line: ``dotted.path: message``."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))

    def lines(self) -> list[str]:
        return self.problems


class DataError(RaydlError):
    """The data a spec points at is missing, unreadable or not what the spec says."""
