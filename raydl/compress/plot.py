"""The compression section of ``report.html``: size and batch-1 latency against the test
metric, one point per candidate (the selected one marked, failing ones hollow), as an
HTML fragment with the PNG embedded. The stage writes it to ``compress/section.html``
and ``compress/pareto.png``; the report embeds the fragment as it is."""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import Any

SECTION, PNG = "section.html", "pareto.png"


def figure_png(result: dict[str, Any]) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metric, rows = result["metric"], result["candidates"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key, label in (
        (axes[0], "size_bytes", "file size (KiB)"),
        (axes[1], "latency_p50_ms", "p50 latency at batch 1 (ms)"),
    ):
        for r in rows:
            v = r[key] / 1024 if key == "size_bytes" else r[key]
            face = "tab:red" if r.get("selected") else ("tab:blue" if r["passed"] else "none")
            ax.scatter(v, r["metrics"][metric], s=60, facecolors=face, edgecolors="tab:blue")
            ax.annotate(
                r["name"], (v, r["metrics"][metric]), fontsize=8, xytext=(4, 4), textcoords="offset points"
            )
        ax.set_xlabel(label)
        ax.set_ylabel(f"test {metric}")
    fig.suptitle(f"candidates ({result['threads']} thread(s)); red: selected, hollow: failed the gate")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return buf.getvalue()


def write_section(result: dict[str, Any], directory: Path) -> Path:
    """Write ``pareto.png`` and the fragment ``section.html`` into ``directory``."""
    png = figure_png(result)
    (directory / PNG).write_bytes(png)
    metric, attacked = result["metric"], result.get("robustness") is not None
    head = ["candidate", metric, *(("FGSM", "PGD", "attack") if attacked else ())]
    head += ["params", "size KiB", "p50 ms", "p95 ms", "rows/s @64", "gate"]
    body = "".join(
        "<tr>"
        + "".join(
            f"<td>{html.escape(str(v))}</td>"
            for v in (
                ("* " if r.get("selected") else "") + r["name"],
                f"{r['metrics'][metric]:.4f}",
                *((f"{r['fgsm_accuracy']:.4f}", f"{r['pgd_accuracy']:.4f}", r["attack"]) if attacked else ()),
                f"{r['params']:,}",
                f"{r['size_bytes'] / 1024:.1f}",
                f"{r['latency_p50_ms']:.3f}",
                f"{r['latency_p95_ms']:.3f}",
                f"{r['throughput_rows_s']:.0f}",
                r["gate"],
            )
        )
        + "</tr>"
        for r in result["candidates"]
    )
    encoded = base64.b64encode(png).decode()
    selected = html.escape(str(result["selected"] or "none (the best checkpoint is served)"))
    attacks = ""
    if attacked:
        r = result["robustness"]
        attacks = (
            f"<p>FGSM/PGD: accuracy under an L-inf attack of {r['epsilon']} (scaled input units, "
            f"{r['pgd_steps']} PGD steps) on {r['rows']} test rows; transfer: int8/ONNX candidates "
            "scored on the rows crafted against the original.</p>"
        )
    fragment = (
        f"<p>selected: <b>{selected}</b></p>"
        f"<table><tr>{''.join(f'<th>{h}</th>' for h in head)}</tr>{body}</table>"
        f"{attacks}"
        f'<img alt="size and latency against {metric}" src="data:image/png;base64,{encoded}">'
    )
    out = directory / SECTION
    out.write_text(fragment)
    return out
