"""The page's building blocks: figures as embedded PNG, tables whose cells read as text
(never a Python dict or list repr), sections."""

from __future__ import annotations

import base64
import html
import io
import json
import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

CSS = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.6em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ddd;padding:.25em .6em;text-align:right;
vertical-align:top}th{background:#f4f4f4}td:first-child,th:first-child{text-align:left}img{max-width:100%}
td.text{text-align:left;max-width:36em}.muted{color:#777}.note{background:#f6f8fa;padding:.5em .8em}
figure{margin:.5em 0}.example{display:inline-block;vertical-align:top;margin:2px 4px}
img.thumb{image-rendering:pixelated;border:1px solid #ccc;margin:1px}
"""


def figure(fig, alt: str) -> str:
    """A matplotlib figure as an embedded PNG (the figure is closed)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    data = base64.b64encode(buf.getvalue()).decode()
    return (
        f'<figure><img class="figure" alt="{html.escape(alt)}" src="data:image/png;base64,{data}"></figure>'
    )


def thumbnail(png_base64: str, alt: str) -> str:
    return f'<img class="thumb" alt="{html.escape(alt)}" src="data:image/png;base64,{png_base64}">'


def cell(v: Any) -> str:
    """A value as the text of a table cell: dicts as ``key value`` pairs (empty and zero
    entries left out), lists joined, floats to 4 significant digits, missing as —."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, dict):
        shown = [f"{str(k).replace('_', ' ')} {cell(x)}" for k, x in v.items() if x not in (0, None, [], {})]
        return "; ".join(shown) if shown else "—"
    if isinstance(v, list | tuple):
        if not v:
            return "—"
        head = ", ".join(cell(x) for x in v[:6])
        return head + (f" … ({len(v)} in all)" if len(v) > 6 else "")
    return html.escape(str(v))


def table(rows: list[dict[str, Any]], columns: list[str] | None = None, raw: tuple[str, ...] = ()) -> str:
    """An HTML table of ``rows``; the ``raw`` columns hold HTML already (thumbnails)."""
    if not rows:
        return '<p class="muted">none</p>'
    columns = columns or list(dict.fromkeys(k for r in rows for k in r))
    head = "".join(f"<th>{html.escape(c.replace('_', ' '))}</th>" for c in columns)

    def td(row: dict[str, Any], c: str) -> str:
        v = row.get(c)
        if c in raw:
            return f'<td class="text">{v or ""}</td>'
        kind = ' class="text"' if isinstance(v, str | dict) and len(cell(v)) > 24 else ""
        return f"<td{kind}>{cell(v)}</td>"

    body = "".join("<tr>" + "".join(td(r, c) for c in columns) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def section(sid: str, title: str, body: str) -> str:
    return f'<section id="{sid}"><h2>{html.escape(title)}</h2>{body}</section>'


def note(text: str) -> str:
    return f'<p class="note">{html.escape(text)}</p>'


def read_json(path: Path) -> Any:
    return json.loads(path.read_text()) if path.is_file() else None
