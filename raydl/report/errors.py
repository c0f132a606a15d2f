"""Error analysis: the most confused class pairs and the worst-predicted test rows, each
with the example itself (thumbnail, text, fields, file path; see :mod:`raydl.examples`)."""

from __future__ import annotations

import html
from typing import Any

from raydl.report.render import cell, table, thumbnail

_SHOWN = ("row_id", "true", "predicted", "p_true", "p_predicted", "abs_error")


def example_html(example: dict[str, Any] | None, alt: str, row_id: Any = None) -> str:
    """One example as HTML; its file path is left out where the row's id already shows it."""
    if not example:
        return ""
    parts = []
    if "image_png" in example:
        parts.append(thumbnail(example["image_png"], alt))
    if "path" in example and example["path"] != row_id:
        parts.append(f"<div><code>{html.escape(str(example['path']))}</code></div>")
    if "text" in example:
        parts.append(f"<div>{html.escape(example['text'])}</div>")
    if "fields" in example:
        # every field, zeros included (cell() leaves out zero counts, not zero values)
        parts.append("; ".join(f"{html.escape(str(k))} {cell(v)}" for k, v in example["fields"].items()))
    return f'<span class="example">{"".join(parts)}</span>'


def errors_section(errors: dict[str, Any]) -> str:
    worst = errors.get("worst") or []
    body = ""
    pairs = errors.get("confused_pairs")
    if pairs is not None:
        rows = [
            {
                "true": p["true"],
                "predicted": p["predicted"],
                "count": p["count"],
                "share of true": p.get("share_of_true"),
                "examples": " ".join(
                    example_html(e, f"{p['true']} as {p['predicted']}") for e in p.get("examples", [])
                ),
            }
            for p in pairs
        ]
        has_examples = any(r["examples"] for r in rows)
        columns = ["true", "predicted", "count", "share of true"] + (["examples"] if has_examples else [])
        body += "<h3>most confused pairs</h3>" + table(rows, columns, raw=("examples",))
    rows = [
        {k: w.get(k) for k in _SHOWN if k in w}
        | {"example": example_html(w.get("example"), str(w.get("true")), w.get("row_id"))}
        for w in worst
    ]
    columns = [k for k in _SHOWN if any(k in w for w in worst)]
    if any(r["example"] for r in rows):
        columns.append("example")
    elif worst:
        body += (
            '<p class="muted">the source names no rows, so the examples cannot be shown: set '
            "<code>data.id_column</code> to a column naming each row</p>"
        )
    body += "<h3>worst-predicted test examples</h3>" + table(rows, columns, raw=("example",))
    return body
