"""The ``raydl`` command.

Errors a user causes (a bad spec, missing data) are printed one per line with exit code
2 — no traceback; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from raydl.errors import RaydlError

if TYPE_CHECKING:
    from raydl.pipeline import RunResult
    from raydl.progress import Display
    from raydl.spec import JobSpec

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


# The heaviest imports of `raydl run`'s pipeline that import no Ray: they load while Ray
# starts (runtime.connect's ``meanwhile``). tests/unit/test_light_loading.py checks that
# they import no Ray.
ALONGSIDE_RAY = ("torch", "torchmetrics")


class Interrupted(RaydlError):
    exit_code = 130


@contextlib.contextmanager
def _interruptible() -> Iterator[None]:
    """Ctrl-C during a stage: say what happened and exit 130 (click alone would print
    "Aborted!" and exit 1). Ray is shut down on the way out by runtime.connect."""
    try:
        yield
    except KeyboardInterrupt as e:
        raise Interrupted(
            "interrupted; Ray was shut down, the run directory keeps what was written"
            + (f"; {e}" if str(e) else "")
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
    from raydl.checks import load_spec
    from raydl.progress import Display

    _setup_logging(verbose)
    if resume is not None:
        from raydl.pipeline import resume_run

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
        run_spec(job, runs_root=output, display=Display(console), verbose=verbose)


def run_spec(job: JobSpec, *, runs_root: Path | None, display: Display, verbose: bool = False) -> RunResult:
    """`raydl run SPEC`'s path once the spec is valid: Ray starts while the pipeline's
    heaviest imports load (:data:`ALONGSIDE_RAY`), then the pipeline runs on it."""
    from raydl.runtime import connect

    with connect(job, verbose, meanwhile=ALONGSIDE_RAY):
        from raydl.pipeline import run as run_job

        return run_job(job, runs_root=runs_root, display=display, verbose=verbose)


@app.command()
def data(
    spec: Spec,
    overrides: Overrides = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Also write the report (JSON) to this file.")
    ] = None,
    verbose: Verbose = False,
) -> None:
    """Run only the data preparation of a job and print its data report."""
    from raydl.checks import load_spec
    from raydl.data.prepare import prepare_data
    from raydl.names import names_by_value
    from raydl.progress import Display
    from raydl.runtime import connect

    _setup_logging(verbose)
    job = load_spec(spec, overrides or [])
    display = Display(console)
    with _interruptible(), connect(job, verbose):
        prepared = prepare_data(job)
    display.data(prepared.report)
    display.data_report(prepared.report, names_by_value(job, prepared.preprocessor.classes))
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(prepared.report, indent=2, default=str) + "\n")
        console.print(f"report: {output}")


@app.command()
def validate(
    spec: Spec,
    overrides: Overrides = None,
    skip_paths: Annotated[
        bool,
        typer.Option(
            "--skip-paths",
            help="Do not check that local paths (data, weights, tokenizer) exist here: the job "
            "will run where they are (a cluster).",
        ),
    ] = False,
) -> None:
    """Check a spec (and overrides) without running it: no Ray, no torch."""
    from raydl.checks import load_spec

    job = load_spec(spec, overrides or [], local_paths=not skip_paths)
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


@app.command()
def compress(
    run_dir: Annotated[Path, typer.Argument(help="A finished run directory.", show_default=False)],
    overrides: Overrides = None,
    verbose: Verbose = False,
) -> None:
    """Build, measure and gate compressed candidates of a run's best model; the selected
    one is written to RUN_DIR/model/ (what predict and serve load)."""
    from raydl.pipeline import compress_run
    from raydl.progress import Display

    _setup_logging(verbose)
    with _interruptible():
        result = compress_run(run_dir, overrides, display=Display(console), verbose=verbose)
    selected = result["selected"]
    console.print(
        f"selected: {selected} → {Path(run_dir) / 'model'}"
        if selected
        else "no candidate passed the gate: the best checkpoint stays the served model"
    )


@app.command()
def predict(
    run_dir: Annotated[Path, typer.Argument(help="A run directory.", show_default=False)],
    input: Annotated[
        Path,
        typer.Option(
            "--input",
            "-i",
            help="Rows to predict: a parquet, csv or jsonl file, a folder of them, or of images.",
        ),
    ],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Where predictions go: a .parquet, .csv or .jsonl file.")
    ],
    model: Annotated[
        str, typer.Option("--model", help="selected (compression's choice, else best), best, or a path.")
    ] = "selected",
    actors: Annotated[
        int | None, typer.Option("--actors", help="Predictor actors (default: half the cluster's CPUs).")
    ] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Rows per forward pass.")] = 1024,
    verbose: Verbose = False,
) -> None:
    """Batch inference: the run's Predictor over every row of --input, on Ray Data actors.
    Rows that fail go to OUTPUT.errors.parquet with the reason."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from raydl.batch_predict import predict_files
    from raydl.checks import load_spec
    from raydl.rundir import RunDir
    from raydl.runtime import connect

    _setup_logging(verbose)
    # the run's spec only says which cluster to join: its training data need not be here
    job = load_spec(RunDir.open(run_dir).spec, local_paths=False)
    progress = Progress(
        TextColumn("  rows"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[failed]}"),
        console=err_console,
        transient=True,
    )
    task = progress.add_task("predict", total=None, failed="")

    def started(total: int | None, notes: list[str]) -> None:
        for note in notes:
            err_console.print(f"[yellow]note[/]: {note}", highlight=False)
        progress.update(task, total=total)

    def rows_done(done: int, failed: int) -> None:
        progress.update(task, completed=done, failed=f"{failed:,} failed" if failed else "")

    with _interruptible(), connect(job, verbose), progress:
        result = predict_files(
            run_dir,
            input,
            output,
            model=model,
            actors=actors,
            batch_size=batch_size,
            on_start=started,
            on_rows=rows_done,
        )
    console.print(f"[green]predicted[/] {result.predicted:,} of {result.rows:,} rows → {result.output}")
    if result.failed:
        console.print(
            f"[yellow]failed[/] {result.failed:,} rows → {result.errors} (first: {result.first_error})",
            highlight=False,
        )


@app.command("serve")
def serve_run(
    run_dir: Annotated[
        str, typer.Argument(help="A run directory (a local path or URI), or a runs folder: its newest run.")
    ],
    host: Annotated[str, typer.Option("--host", help="Interface the HTTP proxy binds.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port of the HTTP proxy.")] = 8000,
    config: Annotated[
        Path | None,
        typer.Option("--config", help="Write a Ray Serve config file (for `serve deploy`) here and exit."),
    ] = None,
    canary: Annotated[
        str | None,
        typer.Option("--canary", help="Another run served beside it, getting --weight of /predict."),
    ] = None,
    weight: Annotated[float, typer.Option("--weight", help="The canary's share of /predict requests.")] = 0.1,
    shadow: Annotated[
        str | None,
        typer.Option("--shadow", help="A run that sees a copy of the traffic; compared, never returned."),
    ] = None,
    verbose: Verbose = False,
) -> None:
    """Serve a run's model over HTTP on Ray Serve: /predict and the Open Inference Protocol v2,
    as the run's `serve:` section says. Stops on Ctrl-C."""
    import yaml

    from raydl.checks import load_spec
    from raydl.rundir import RunDir, is_uri
    from raydl.serve.config import config_file
    from raydl.serve.source import local_run_dir
    from raydl.spec.serve import ServeSpec

    _setup_logging(verbose)
    local = local_run_dir(run_dir)
    job = load_spec(RunDir.open(local).spec, local_paths=False)  # its data need not be here
    spec = job.serve or ServeSpec()
    where = run_dir if is_uri(run_dir) else str(Path(run_dir).resolve())
    if canary or shadow:
        from pydantic import ValidationError

        def here(r: str) -> str:
            return r if is_uri(r) else str(Path(r).resolve())

        extra: dict[str, Any] = {}
        if canary:
            extra["versions"] = [*spec.model_dump()["versions"], {"run": here(canary), "weight": weight}]
        if shadow:
            extra["shadow"] = here(shadow)
        try:
            spec = ServeSpec.model_validate({**spec.model_dump(), **extra})
        except ValidationError as e:
            raise RaydlError(
                "; ".join(f"{'.'.join(map(str, x['loc']))}: {x['msg']}" for x in e.errors())
            ) from None
    if config is not None:
        config.write_text(
            yaml.safe_dump(config_file(spec, where, name=job.name, host=host, port=port), sort_keys=False)
        )
        console.print(f"[green]wrote[/] {config}  (deploy it with: serve deploy {config})")
        return
    from raydl.serve.auth import required_token
    from raydl.serve.config import RAY_ENV

    required_token(spec.auth)  # serve.auth: its token must be here before Ray starts (and inherits it)
    # before Ray (and Serve's constants here) load: Ray's processes read them (serve/config.py)
    for name, value in RAY_ENV.items():
        os.environ.setdefault(name, value)
    from raydl.env import ray_address
    from raydl.runtime import connect
    from raydl.serve.launch import start, wait_forever

    joined = bool(job.cluster.address or ray_address())  # else an embedded Ray, started here
    with _interruptible(), connect(job, verbose):
        url = start(where, spec, name=job.name, host=host, port=port)
        console.print(
            f"[green]serving[/] {job.name} ({local.name}) at {url}  (Ctrl-C stops)", highlight=False
        )
        wait_forever(joined)


Address = Annotated[
    str,
    typer.Option(
        "--address",
        envvar="RAY_API_SERVER_ADDRESS",
        help="The cluster's job API (the head's dashboard), e.g. http://HEAD:8265.",
    ),
]
JobId = Annotated[str, typer.Argument(help="The job's submission id.", show_default=False)]


@app.command()
def submit(
    spec: Spec,
    overrides: Overrides = None,
    address: Address = "http://127.0.0.1:8265",
    working_dir: Annotated[
        Path, typer.Option("--working-dir", help="Your code, uploaded with the job (no .venv/.git/runs).")
    ] = Path("."),
    requirements: Annotated[
        Path | None, typer.Option("--requirements", help="pip requirements installed for the job.")
    ] = None,
    no_wait: Annotated[bool, typer.Option("--no-wait", help="Print the job id and return at once.")] = False,
    verbose: Verbose = False,
) -> None:
    """Submit a job to a Ray cluster, stream its logs, exit with its status (0: SUCCEEDED)."""
    from raydl.checks import load_spec
    from raydl.cluster import submit as jobs

    # the job's data lives on the cluster: its local paths are checked where it runs
    job = load_spec(spec, overrides or [], local_paths=False)
    job_id = jobs.submit(job, address, working_dir=working_dir, requirements=requirements, verbose=verbose)
    err_console.print(f"submitted {job_id} to {address}", highlight=False)
    if no_wait:
        console.print(job_id, highlight=False)
        return
    with _interruptible():
        state = jobs.follow(address, job_id, lambda chunk: (sys.stdout.write(chunk), sys.stdout.flush()))
    if state != "SUCCEEDED":
        state, message = jobs.outcome(address, job_id)
        # the job's logs were streamed above; Ray's message repeats them after its first line
        summary = message.strip().splitlines()[0].split(", last available logs")[0] if message.strip() else ""
        raise jobs.JobFailed(f"job {job_id} {state}: {summary or 'see raydl logs ' + job_id}")
    err_console.print(f"job {job_id} SUCCEEDED", highlight=False)


@app.command("status")
def job_status(job_id: JobId, address: Address = "http://127.0.0.1:8265") -> None:
    """Show a submitted job's status."""
    from raydl.cluster import submit as jobs

    info = jobs.status(address, job_id)
    console.print(f"{job_id}: {info['status']}" + (f" — {info['message']}" if info["message"] else ""))


@app.command("logs")
def job_logs(job_id: JobId, address: Address = "http://127.0.0.1:8265") -> None:
    """Print a submitted job's logs."""
    from raydl.cluster import submit as jobs

    sys.stdout.write(jobs.logs(address, job_id))


@app.command("stop")
def job_stop(job_id: JobId, address: Address = "http://127.0.0.1:8265") -> None:
    """Stop a submitted job."""
    from raydl.cluster import submit as jobs

    stopped = jobs.stop(address, job_id)
    console.print(f"{job_id}: {'stopping' if stopped else 'already finished'}")


@app.command("jobs")
def list_jobs(address: Address = "http://127.0.0.1:8265") -> None:
    """List the jobs of a cluster."""
    from raydl.cluster import submit as jobs

    for j in jobs.list_jobs(address):
        line = f"{j['job_id']}  {j['status']:<9}  {j['raydl_job'] or '-'}  {j['entrypoint']}"
        console.print(line, highlight=False)


k8s_app = typer.Typer(
    help="KubeRay: render a job spec as RayJob/RayService manifests, apply them, read their status.",
    no_args_is_help=True,
)
app.add_typer(k8s_app, name="k8s")
Namespace = Annotated[str, typer.Option("--namespace", "-n", help="Kubernetes namespace.")]
Context = Annotated[str | None, typer.Option("--context", help="kubeconfig context (default: current).")]


def _k8s_spec(spec: Path, overrides: list[str] | None) -> JobSpec:
    from raydl.checks import load_spec

    # the job runs in pods, where its data paths are (checked there)
    return load_spec(spec, overrides or [], local_paths=False)


def _k8s_objects(spec: Path, overrides: list[str] | None, namespace: str | None = None) -> list[dict]:
    from raydl.cluster import kuberay

    return kuberay.render(_k8s_spec(spec, overrides), namespace)


@k8s_app.command("render")
def k8s_render(spec: Spec, overrides: Overrides = None) -> None:
    """Print the ConfigMap + RayJob (+ RayService with `serve:`) for a job spec, as YAML."""
    from raydl.cluster import kuberay

    sys.stdout.write(kuberay.to_yaml(_k8s_objects(spec, overrides)))


@k8s_app.command("values")
def k8s_values(spec: Spec, overrides: Overrides = None) -> None:
    """Print values for the helm/raydl chart giving the same cluster, with a RayJob running the spec."""
    import yaml

    from raydl.cluster import kuberay

    sys.stdout.write(yaml.safe_dump(kuberay.helm_values(_k8s_spec(spec, overrides)), sort_keys=False))


@k8s_app.command("apply")
def k8s_apply(
    spec: Spec, overrides: Overrides = None, namespace: Namespace = "default", context: Context = None
) -> None:
    """Create the rendered objects in the cluster of the current kubeconfig."""
    from raydl.cluster import kube_client

    for line in kube_client.apply(_k8s_objects(spec, overrides, namespace), namespace, context):
        console.print(line)


@k8s_app.command("status")
def k8s_status(
    spec: Spec, overrides: Overrides = None, namespace: Namespace = "default", context: Context = None
) -> None:
    """Show the status of the RayJob (and RayService) of a job spec."""
    from raydl.cluster import kube_client

    for obj in kube_client.status(_k8s_spec(spec, overrides), namespace, context):
        state = obj["status"]
        summary = state.get("jobStatus") or state.get("serviceStatus") or state.get("jobDeploymentStatus")
        console.print(f"{obj['kind']}/{obj['name']}: {summary or 'no status yet'}")
        console.print(json.dumps(state, indent=2), highlight=False)


@app.command()
def tune(
    spec: Annotated[
        Path | None, typer.Argument(help="A job spec with a tune: section.", show_default=False)
    ] = None,
    overrides: Overrides = None,
    resume: Annotated[
        Path | None, typer.Option("--resume", help="Continue the stopped search of this run directory.")
    ] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Runs folder.")] = None,
    verbose: Verbose = False,
) -> None:
    """Search hyperparameters (the spec's tune: section), then evaluate the best trial."""
    from raydl.checks import load_spec
    from raydl.pipeline import run as run_job
    from raydl.progress import Display

    _setup_logging(verbose)
    if spec is not None and resume is None:
        path = spec
    elif resume is not None and spec is None:
        path = resume / "spec.yaml"
    else:
        raise RaydlError("tune: give a spec, or --resume RUN_DIR (not both)")
    job = load_spec(path, overrides or [])
    if job.tune is None:
        raise RaydlError(f"tune: {spec or resume} has no tune: section")
    with _interruptible():
        run_job(job, runs_root=output, display=Display(console), verbose=verbose, resume_search=resume)


@app.command()
def report(run_dir: Annotated[Path, typer.Argument(help="A run directory.", show_default=False)]) -> None:
    """(Re)build a run's report.html from what its run directory holds; a failed run gets
    what failed and where, and exit code 1."""
    from raydl.report import build_report

    console.print(f"[green]wrote[/] {build_report(run_dir)}")


@app.command("runs")
def list_runs(
    runs_dir: Annotated[
        Path | None, typer.Argument(help="A runs folder (default ./runs or $RAYDL_RUNS_DIR).")
    ] = None,
) -> None:
    """List the runs of a runs folder, newest first: status, task, main test metric, time
    (and, for a run that failed, where and why)."""
    from raydl import env
    from raydl.runs import list_runs as runs_in

    root = runs_dir or Path(env.runs_root())
    runs = runs_in(root)
    if not runs:
        console.print(f"no runs in {root}", highlight=False)
        return
    # plain aligned columns, not a rich table: a narrow terminal or a pipe would squash it
    rows = [("RUN", "STATUS", "TASK", "MAIN METRIC", "CREATED", "")]
    for r in runs:
        metric = f"{r.main_metric[0]} {r.main_metric[1]:.4f}" if r.main_metric else "-"
        why = f"in {r.stage}: {r.error}" if r.status in ("failed", "interrupted") else ""
        rows.append((r.path.name, r.status, r.task or "-", metric, r.created.replace("T", " "), why))
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    for row in rows:
        line = "  ".join(v.ljust(w) for v, w in zip(row, widths)) + ("  " + row[5] if row[5] else "")
        console.print(line.rstrip(), highlight=False, markup=False)


#: the errors of a full disk, a quota, or a folder raydl may not write: the user's to fix
_STORAGE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM}


def _storage_error(e: BaseException | None) -> OSError | None:
    """The full-disk or permission error behind ``e``, if one is: raised here, or in a Ray
    worker (a Ray task error keeps it as ``cause``; Ray Train chains it)."""
    seen: set[int] = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno in _STORAGE_ERRNOS:
            return e
        cause = getattr(e, "cause", None)
        e = cause if isinstance(cause, BaseException) else (e.__cause__ or e.__context__)
    return None


def main() -> None:
    try:
        app()
    except RaydlError as e:
        label = "" if isinstance(e, Interrupted) else "[red]error[/]: "
        for line in e.lines():
            err_console.print(f"{label}{line}", highlight=False, soft_wrap=True)
        sys.exit(e.exit_code)
    except Exception as e:
        disk = _storage_error(e)
        if disk is None:
            raise
        where = f" {disk.filename}" if disk.filename else ""
        hint = (
            "; free space there, or write runs elsewhere (--output, $RAYDL_RUNS_DIR)"
            if disk.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
            else "; write runs elsewhere (--output, $RAYDL_RUNS_DIR)"
        )
        err_console.print(
            f"[red]error[/]: cannot write{where}: {disk.strerror}{hint}", highlight=False, soft_wrap=True
        )
        sys.exit(1)


if __name__ == "__main__":
    main()
