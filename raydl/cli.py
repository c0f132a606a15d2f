"""The ``raydl`` command.

Errors a user causes (a bad spec, missing data) are printed one per line with exit code
2 — no traceback; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from raydl.errors import RaydlError

app = typer.Typer(
    name="raydl",
    help="A deep-learning runtime on Ray: one job spec from data to a trained, evaluated model.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)

Spec = Annotated[Path, typer.Argument(help="The job spec (YAML).", show_default=False)]
Overrides = Annotated[
    list[str] | None,
    typer.Argument(help="Dotted overrides, e.g. train.epochs=3 model.params.dropout=0.1."),
]
Verbose = Annotated[bool, typer.Option("--verbose", "-v", help="Show Ray's own logs.")]


class Interrupted(RaydlError):
    exit_code = 130


@contextlib.contextmanager
def _interruptible() -> Iterator[None]:
    """Ctrl-C during a stage: say what happened and exit 130 (click alone would print
    "Aborted!" and exit 1). Ray is shut down on the way out by runtime.connect."""
    try:
        yield
    except KeyboardInterrupt:
        raise Interrupted(
            "interrupted; Ray was shut down, the run directory keeps what was written"
        ) from None


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )


@app.command()
def run(
    spec: Annotated[
        Path | None, typer.Argument(help="The job spec (YAML); omit with --resume.", show_default=False)
    ] = None,
    overrides: Overrides = None,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Runs folder (default ./runs or $RAYDL_RUNS_DIR)."),
    ] = None,
    resume: Annotated[
        Path | None,
        typer.Option(
            "--resume",
            help="Continue a stopped run in its run directory, from its latest checkpoint.",
            show_default=False,
        ),
    ] = None,
    verbose: Verbose = False,
) -> None:
    """Run a job: data → train → evaluate, on embedded Ray or the cluster it names."""
    from raydl.pipeline import resume_run
    from raydl.pipeline import run as run_job
    from raydl.progress import Display
    from raydl.spec import load_spec

    _setup_logging(verbose)
    if resume is not None:
        if spec is not None or overrides:
            raise RaydlError(
                "--resume: a resumed run uses the spec saved in its run directory; "
                "give no spec or overrides with it"
            )
        with _interruptible():
            resume_run(resume, display=Display(console), verbose=verbose)
        return
    if spec is None:
        raise RaydlError("run: give a job spec (raydl run JOB.yaml), or --resume RUN_DIR")
    job = load_spec(spec, overrides or [])
    with _interruptible():
        run_job(job, runs_root=output, display=Display(console), verbose=verbose)


@app.command()
def validate(spec: Spec, overrides: Overrides = None) -> None:
    """Check a spec (and overrides) without running it."""
    from raydl.spec import load_spec

    job = load_spec(spec, overrides or [])
    console.print(
        f"[green]ok[/]: {spec} is a valid job spec ({job.name}: "
        f"{job.data.source.type} data, model {job.model.arch}, "
        f"{job.train.workers} workers × {job.train.epochs} epochs)"
    )


@app.command()
def schema() -> None:
    """Print the JSON Schema of the job spec."""
    from raydl.spec import JobSpec

    sys.stdout.write(json.dumps(JobSpec.model_json_schema(), indent=2) + "\n")


@app.command()
def evaluate(
    run_dir: Annotated[Path, typer.Argument(help="A run directory.", show_default=False)],
    verbose: Verbose = False,
) -> None:
    """Re-evaluate a run's best checkpoint on its test split."""
    from raydl.pipeline import evaluate_run
    from raydl.progress import Display

    _setup_logging(verbose)
    with _interruptible():
        evaluate_run(run_dir, display=Display(console), verbose=verbose)


def main() -> None:
    try:
        app()
    except RaydlError as e:
        label = "" if isinstance(e, Interrupted) else "[red]error[/]: "
        for line in e.lines():
            err_console.print(f"{label}{line}", highlight=False, soft_wrap=True)
        sys.exit(e.exit_code)


if __name__ == "__main__":
    main()
