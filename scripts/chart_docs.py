"""The values table of helm/raydl/README.md, from the ``# --`` comments of values.yaml
(the helm-docs convention; helm-docs itself is a Go tool not packaged for pip).

    python scripts/chart_docs.py          # rewrite the table in the README
    python scripts/chart_docs.py --check  # exit 1 if a value lacks '# --' or the README is stale
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import yaml

CHART = Path(__file__).resolve().parents[1] / "helm" / "raydl"
BEGIN, END = "<!-- values:begin -->", "<!-- values:end -->"


def documented_values(text: str) -> tuple[list[tuple[str, str, str]], list[str]]:
    """(key, default, description) for every value, and a problem line per value without ``# --``."""
    data = yaml.safe_load(text)
    rows, problems = [], []
    stack: list[tuple[int, str]] = []
    comment: list[str] | None = None
    skip_deeper_than: int | None = None
    for number, line in enumerate(text.splitlines(), 1):
        s = line.strip()
        indent = len(line) - len(line.lstrip())
        if skip_deeper_than is not None:
            if not s or indent > skip_deeper_than or s.startswith("- "):
                continue
            skip_deeper_than = None
        if s.startswith("# --"):
            comment = [s[4:].strip()]
            continue
        if s.startswith("#"):
            if comment is not None:
                comment.append(s[1:].strip())
            continue
        if not s:
            comment = None
            continue
        m = re.match(r"^( *)([A-Za-z][\w]*):(.*)$", line)
        if not m:
            continue
        while stack and stack[-1][0] >= indent:
            stack.pop()
        key = ".".join([k for _, k in stack] + [m.group(2)])
        block = m.group(3).strip() == ""
        if block and comment is None:  # a section of further values
            stack.append((indent, m.group(2)))
            continue
        if comment is None:
            problems.append(f"values.yaml:{number}: {key} has no '# --' comment")
        else:
            value = data
            for part in key.split("."):
                value = value[part]
            rows.append((key, json.dumps(value), " ".join(comment)))
        if block:
            skip_deeper_than = indent
        comment = None
    return rows, problems


def table(rows: list[tuple[str, str, str]]) -> str:
    out = ["| Key | Default | Description |", "|-----|---------|-------------|"]
    bar = "\\|"
    out += [f"| {k} | `{d}` | {desc.replace('|', bar)} |" for k, d, desc in rows]
    return "\n".join(out)


def readme_with_table(readme: str, rows: list[tuple[str, str, str]]) -> str:
    before, _, rest = readme.partition(BEGIN)
    _, _, after = rest.partition(END)
    return f"{before}{BEGIN}\n{table(rows)}\n{END}{after}"


def main() -> None:
    rows, problems = documented_values((CHART / "values.yaml").read_text())
    readme_path = CHART / "README.md"
    readme = readme_path.read_text()
    wanted = readme_with_table(readme, rows)
    if "--check" in sys.argv:
        if wanted != readme:
            problems.append(f"{readme_path}: the values table is stale; run scripts/chart_docs.py")
        for p in problems:
            print(p, file=sys.stderr)
        sys.exit(1 if problems else 0)
    readme_path.write_text(wanted)
    for p in problems:
        print(p, file=sys.stderr)


if __name__ == "__main__":
    main()
