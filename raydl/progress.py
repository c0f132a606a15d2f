"""What a person sees during a run: stages, a live epoch bar, the final metrics table."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from raydl.spec import JobSpec

_EPOCH_KEYS = ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "val_mae", "val_rmse")


def _fmt(row: dict[str, Any], keys=_EPOCH_KEYS) -> str:
    return "  ".join(f"{k} {row[k]:.4f}" for k in keys if isinstance(row.get(k), float))


class Display:
    """Rich output for the CLI; ``quiet`` turns it off for library use and tests."""

    def __init__(self, console: Console | None = None, quiet: bool = False):
        self.console = console or Console()
        self.quiet = quiet

    def _print(self, *args: Any, **kwargs: Any) -> None:
        if not self.quiet:
            self.console.print(*args, **kwargs)

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

    @contextlib.contextmanager
    def epochs(self, total: int) -> Iterator[Callable[[dict[str, Any]], None]]:
        """A live bar over epochs; yields the callback that takes each epoch's metrics."""
        if self.quiet:
            yield lambda row: None
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
            stop = "  [yellow](early stop)[/]" if row.get("stopped_early") else ""
            progress.console.print(f"  epoch {row['epoch']:>3}  {_fmt(row)}{stop}")
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
            t = Table(title="confusion matrix (rows: true, columns: predicted)", title_justify="left")
            t.add_column("")
            for n in names:
                t.add_column(n[:8], justify="right")
            for n, row in zip(names, cm):
                t.add_row(n[:8], *[str(v) for v in row])
            self._print(t)

    def done(self, path: Path) -> None:
        self._print(f"[green]done[/]: {path}")
