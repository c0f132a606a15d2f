"""Pydantic's validation errors, rewritten as the lines a user reads:
``dotted.path: what is wrong, got value`` and, for a typo, the keys allowed there."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel

from raydl.registry import did_you_mean

_KEY = re.compile(r"^[\w-]+$")  # a key shown bare in a dotted path; any other is quoted


def _dotted(loc: tuple[Any, ...], raw: Any) -> str:
    """Turn a pydantic error location into the user's dotted path.

    Tagged unions add the tag (``source.builtin.name``), which is not a key the user
    wrote: a location element that is not a key of the input at that point is skipped.
    """
    parts: list[str] = []
    node = raw
    for i, el in enumerate(loc):
        if isinstance(node, dict) and isinstance(el, str) and el not in node and i < len(loc) - 1:
            continue  # a union tag
        if isinstance(node, list) and isinstance(el, int):
            parts[-1:] = [f"{parts[-1]}[{el}]"] if parts else [f"[{el}]"]
            node = node[el] if el < len(node) else None
            continue
        if isinstance(el, str) and not _KEY.match(el) and parts:  # data[' '], not "data. "
            parts[-1] += f"[{el!r}]"
        else:
            parts.append(str(el) if isinstance(el, str) and _KEY.match(el) else f"[{el!r}]")
        node = node.get(el) if isinstance(node, dict) else None
    return ".".join(parts) or "(spec)"


def _allowed_keys(loc: tuple[Any, ...], raw: Any, model: type[BaseModel]) -> list[str]:
    """The keys allowed where an unknown key was found, from the JSON Schema."""
    schema = model.model_json_schema()
    defs = schema.get("$defs", {})

    def resolve(s: dict[str, Any], data: Any) -> dict[str, Any]:
        while True:
            if "$ref" in s:
                s = defs[s["$ref"].split("/")[-1]]
            elif "anyOf" in s or "oneOf" in s:
                options = [o for o in s.get("anyOf", s.get("oneOf", [])) if o.get("type") != "null"]
                options = [defs[o["$ref"].split("/")[-1]] if "$ref" in o else o for o in options]
                tag = data.get("type") if isinstance(data, dict) else None
                match = [
                    o
                    for o in options
                    if tag is None
                    or tag == o.get("properties", {}).get("type", {}).get("const")
                    or tag in o.get("properties", {}).get("type", {}).get("enum", [])
                ]
                s = (match or options or [{}])[0]
            else:
                return s

    s, node = resolve(schema, raw), raw
    for el in loc[:-1]:
        if isinstance(el, int):
            s = resolve(s.get("items", {}), node[el] if isinstance(node, list) else None)
            node = node[el] if isinstance(node, list) and el < len(node) else None
            continue
        props = s.get("properties", {})
        if el not in props:
            continue  # a union tag
        node = node.get(el) if isinstance(node, dict) else None
        s = resolve(props[el], node)
    return sorted(s.get("properties", {}))


def describe_error(err: Any, raw: dict[str, Any], model: type[BaseModel]) -> str:
    """One pydantic error as the user's line: ``dotted.path: what is wrong, got value``."""
    loc = err["loc"]
    path = _dotted(loc, raw)
    kind = err["type"]
    value = err.get("input")
    if kind == "extra_forbidden":
        allowed = _allowed_keys(loc, raw, model)
        hint = did_you_mean(str(loc[-1]), allowed)
        return f"{path}: unknown key; {hint}allowed: {', '.join(allowed)}"
    if kind == "missing":
        return f"{path}: required, but missing"
    msg = err["msg"]
    if kind == "value_error":
        return f"{path}: {msg.removeprefix('Value error, ')}"
    msg = re.sub(r"^(Input|Value|String|List|Dictionary|Tuple) should ", "must ", msg)
    if kind == "union_tag_invalid":
        msg = "must be one of " + err.get("ctx", {}).get("expected_tags", "")
        value = (value or {}).get("type") if isinstance(value, dict) else value
    return f"{path}: {msg}, got {value!r}"
