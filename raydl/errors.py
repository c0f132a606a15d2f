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
        # one line each, whatever a value quoted in it holds
        self.problems = [p.replace("\r", "\\r").replace("\n", "\\n") for p in problems]
        super().__init__("\n".join(self.problems))

    def lines(self) -> list[str]:
        return self.problems


class DataError(RaydlError):
    """The data a spec points at is missing, unreadable or not what the spec says."""


class RowProblem:
    """One bad row of a prediction request: its index in the request, the field, the
    value given (``None`` when the field is absent) and why it cannot be used. ``row`` is
    None for a problem of the whole request (no rows at all)."""

    __slots__ = ("row", "field", "value", "reason")

    def __init__(self, row: int | None, field: str | None, value: object, reason: str) -> None:
        self.row, self.field, self.value, self.reason = row, field, value, reason

    def as_dict(self) -> dict[str, object]:
        return {"row": self.row, "field": self.field, "value": _shown(self.value), "reason": self.reason}

    def __str__(self) -> str:
        where = "request" if self.row is None else f"row {self.row}"
        where += f", field {self.field!r}" if self.field is not None else ""
        shown = "" if self.value is None else f" (got {_shown(self.value)})"
        return f"{where}: {self.reason}{shown}"

    def __repr__(self) -> str:
        return f"RowProblem({self.row}, {self.field!r}, {_shown(self.value)}, {self.reason!r})"


def _shown(value: object, limit: int = 60) -> str:
    """A value as a user reads it in a message: its repr, cut short (images are bytes)."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


class RequestError(RaydlError):
    """Rows given for prediction that cannot be used: a missing field that training never
    filled, an unknown field, a wrong type, an image that does not decode, no rows at all.
    ``problems`` names each bad row (index, field, value, reason); ``row``, ``field`` and
    ``value`` are the first one's."""

    def __init__(self, problems: list[RowProblem]):
        self.problems = list(problems)
        first = self.problems[0] if self.problems else RowProblem(None, None, None, "no rows given")
        self.row, self.field, self.value = first.row, first.field, first.value
        more = len(self.problems) - 1
        super().__init__(str(first) + (f" (and {more} more problem(s))" if more > 0 else ""))

    def lines(self) -> list[str]:
        return [str(p) for p in self.problems] or [str(self)]
