"""What a person sees during a run: stages, a live epoch bar, the final metrics table."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from raydl.spec import JobSpec

_EPOCH_KEYS = ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "val_mae", "val_rmse")


def _fmt(row: dict[str, Any], keys=_EPOCH_KEYS) -> str:
    return "  ".join(f"{k} {row[k]:.4f}" for k in keys if isinstance(row.get(k), float))


def _stopped(row: dict[str, Any]) -> str:
    return "  [yellow](early stop)[/]" if row.get("stopped_early") else ""


def _short(d: dict[str, Any]) -> str:
    return ", ".join(f"{k} {_short(v) if isinstance(v, dict) else v}" for k, v in d.items())


class Display:
    """Rich output for the CLI; ``quiet`` turns it off for library use and tests."""

    def __init__(self, console: Console | None = None, quiet: bool = False):
        self.console = console or Console()
        self.quiet = quiet

    def _print(self, *args: Any, **kwargs: Any) -> None:
        if not self.quiet:
            self.console.print(*args, **kwargs)

    def show(self, renderable: Any) -> None:
        """A table (or any rich renderable) a stage prints at its end."""
        self._print(renderable)

    def start(self, spec: JobSpec, path: Path) -> None:
        self._print(f"[bold]raydl[/] run [cyan]{spec.name}[/] → {path}")

    def stage(self, name: str, detail: str) -> None:
        self._print(f"[bold magenta]▸ {name}[/] {detail}")

    def data(self, report: dict[str, Any]) -> None:
        rows = report["split"]["rows"]
        classes = report.get("class_counts") or {}
        extra = f", {len(classes.get('train', {}))} classes" if classes else ""
        self._print(
            f"  {report['rows']:,} rows → train {rows['train']:,} · val {rows['val']:,} · "
            f"test {rows['test']:,} ({report['split']['method']}, seed {report['split']['seed']})"
            f"{extra}; input shape {tuple(report['input_shape'])}"
        )

    def data_report(self, report: dict[str, Any], names: dict[str, str] | None = None) -> None:
        """The cleaning steps, missing values, outliers, class balance and train feature
        statistics of a data report (the keys that are present). ``names``: a class value's
        display name, where it differs (see :mod:`raydl.names`)."""
        steps = report.get("steps") or []
        if steps:
            t = Table(title="data preparation", title_justify="left")
            for col in ("step", "rows in", "rows out", "changed"):
                t.add_column(col, justify="left" if col in ("step", "changed") else "right")
            for s in steps:
                changed = {k: v for k, v in s["changed"].items() if v not in ({}, [], 0)}
                t.add_row(s["name"], f"{s['rows_in']:,}", f"{s['rows_out']:,}", _short(changed))
            self._print(t)
        line = [f"duplicates {report.get('duplicates', 0)}"]
        missing = {k: v for k, v in (report.get("missing") or {}).items() if v}
        line.append(f"missing {_short(missing) if missing else 0}")
        if report.get("missing_label"):
            line.append(f"rows without a label {report['missing_label']} (dropped)")
        outliers = {k: v for k, v in (report.get("outliers") or {}).items() if v}
        if report.get("outliers") is not None:
            line.append(f"outliers {_short(outliers) if outliers else 0}")
        self._print("  " + " · ".join(line))
        cc = report.get("class_counts") or {}
        if "before" in cc and cc["before"]:
            after = cc.get("after") or {}
            t = Table(title=f"train classes (balance: {report.get('balance', 'none')})", title_justify="left")
            t.add_column("class")
            t.add_column("before", justify="right")
            t.add_column("after", justify="right")
            for k, v in cc["before"].items():
                t.add_row((names or {}).get(str(k), str(k)), str(v), str(after.get(k, "")))
            self._print(t)
        features = report.get("features") or {}
        if features:
            t = Table(title="train features (drift reference)", title_justify="left")
            for col in ("feature", "mean", "std", "min", "p50", "max"):
                t.add_column(col, justify="left" if col == "feature" else "right")
            for name, f in list(features.items())[:20]:
                if f.get("count"):
                    q = f["quantiles"]["0.5"]
                    t.add_row(name, *(f"{v:.4g}" for v in (f["mean"], f["std"], f["min"], q, f["max"])))
            self._print(t)

    @contextlib.contextmanager
    def working(self, what: str) -> Iterator[None]:
        """A live spinner with the time so far over a long phase that reports nothing itself
        (data preparation, evaluation, the report): the terminal is never silent for long.
        Not on a terminal (a log file, CI), nothing: a live display there leaves blank lines."""
        if self.quiet or not self.console.is_terminal:
            yield
            return
        progress = Progress(
            SpinnerColumn(),
            TextColumn(f"  {what}"),
            TimeElapsedColumn(),
            console=self.console,
            transient=True,
        )
        progress.add_task(what, total=None)
        with progress:
            yield

    @contextlib.contextmanager
    def epochs(self, total: int) -> Iterator[Callable[[dict[str, Any]], None]]:
        """A live bar over epochs; yields the callback that takes each epoch's metrics."""
        if self.quiet:
            yield lambda row: None
            return
        if not self.console.is_terminal:  # a log file: the epoch lines, no live bar
            yield lambda row: self._print(f"  epoch {row['epoch']:>3}  {_fmt(row)}{_stopped(row)}")
            return
        progress = Progress(
            TextColumn("  epochs"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[latest]}"),
            console=self.console,
            transient=True,
        )
        task = progress.add_task("train", total=total, latest="starting workers…")

        def on_epoch(row: dict[str, Any]) -> None:
            progress.console.print(f"  epoch {row['epoch']:>3}  {_fmt(row)}{_stopped(row)}")
            progress.update(task, completed=row["epoch"], latest=_fmt(row, ("val_loss",)))

        with progress:
            yield on_epoch

    def metrics(self, metrics: dict[str, Any], task: str) -> None:
        table = Table(title="test metrics", title_justify="left")
        table.add_column("metric")
        table.add_column("value", justify="right")
        for k, v in metrics.items():
            if isinstance(v, float):
                table.add_row(k, f"{v:.4f}")
            elif isinstance(v, int) and not isinstance(v, bool):
                table.add_row(k, str(v))
        self._print(table)
        cm = metrics.get("confusion_matrix")
        if cm and len(cm) <= 12:
            names = metrics.get("classes") or [str(i) for i in range(len(cm))]
            # rows carry the whole names; columns too when they are short, else their row's
            # number, so ten names like "T-shirt/top" still fit across a terminal
            short = max(map(len, names)) <= 6
            heads = names if short else [str(i) for i in range(len(names))]
            by = "" if short else ", by row number"
            # the title on its own line: as a table title it wraps to a narrow table's width
            self._print(f"[italic]confusion matrix[/] (rows: true, columns: predicted{by})")
            t = Table()
            t.add_column("")
            for h in heads:
                t.add_column(h, justify="right", no_wrap=True, min_width=len(str(int(max(map(max, cm))))))
            for i, (n, row) in enumerate(zip(names, cm)):  # counts (JSON may hold them as floats)
                t.add_row(n if short else f"{i} {n}", *[str(int(v)) for v in row])
            self._print(t)

    def note(self, text: str) -> None:
        self._print(f"  [dim]{text}[/]", highlight=False)

    def done(self, path: Path) -> None:
        self._print(f"[green]done[/]: {path}")
