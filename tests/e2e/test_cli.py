"""The raydl command as a user runs it: exit codes, messages, a real run on embedded Ray,
and a run that joins a separately started Ray head."""

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

RAYDL = [sys.executable, "-m", "raydl.cli"]


def raydl(*args: str, env: dict | None = None, timeout: int = 600, cwd=None):
    return subprocess.run(
        [*RAYDL, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        cwd=cwd,
    )


def test_console_script_is_installed():
    exe = Path(sys.executable).parent / "raydl"
    out = subprocess.run([str(exe), "--help"], capture_output=True, text=True, check=True)
    for command in ("run", "validate", "schema", "evaluate"):
        assert command in out.stdout


def test_bad_spec_is_one_line_per_problem_and_exit_2(tmp_path):
    spec = tmp_path / "bad.yaml"
    spec.write_text(
        "name: bad\n"
        "data: {source: {type: builtin, name: digits}, label: target}\n"
        "model: {arch: cnnn}\n"
        "train: {epohcs: 3, optimizer: {lr: -0.1}, batch_size: many}\n"
    )
    out = raydl("validate", str(spec))
    assert out.returncode == 2
    assert "Traceback" not in out.stderr + out.stdout
    lines = out.stderr.strip().splitlines()
    from raydl.models import MODELS
    from raydl.spec import TrainSpec

    assert sorted(lines) == [
        "error: model.arch: unknown model 'cnnn'; did you mean 'cnn'? "
        f"available: {', '.join(MODELS.names())} (or 'module:function' for your own)",
        "error: train.batch_size: must be a valid integer, unable to parse string as an integer, got 'many'",
        "error: train.epohcs: unknown key; did you mean 'epochs'? allowed: "
        + ", ".join(sorted(TrainSpec.model_fields)),
        "error: train.optimizer.lr: must be greater than 0, got -0.1",
    ]
    # `run` refuses the same spec before it reaches for Ray (pointed at an address where
    # no Ray answers, it would say so) or writes a run directory
    out = raydl("run", str(spec), "-o", str(tmp_path / "runs"), env={"RAY_ADDRESS": "127.0.0.1:9"})
    assert out.returncode == 2 and "model.arch" in out.stderr
    assert "cannot connect" not in out.stderr and not (tmp_path / "runs").exists()


def test_validate_with_overrides_and_schema(repo_root):
    out = raydl("validate", f"{repo_root}/jobs/digits_cnn.yaml", "train.epochs=3")
    assert out.returncode == 0 and "3 epochs" in out.stdout
    out = raydl("validate", f"{repo_root}/jobs/digits_cnn.yaml", "train.epochs=-3")
    assert out.returncode == 2
    assert out.stderr.strip() == "error: train.epochs: must be greater than or equal to 1, got -3"
    schema = json.loads(raydl("schema").stdout)
    assert schema["title"] == "JobSpec" and "train" in schema["properties"]


def test_missing_data_is_a_clear_error(repo_root, tmp_path):
    out = raydl(
        "run",
        f"{repo_root}/jobs/fashion_mnist_cnn.yaml",
        f"data.source.path={tmp_path}",
        "-o",
        str(tmp_path / "runs"),
    )
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    assert "apt-get install dataset-fashion-mnist" in out.stderr


USER_MODEL = (
    "import math\n"
    "import torch.nn as nn\n\n"
    "def tiny(input_shape, num_outputs, width=16):\n"
    "    return nn.Sequential(nn.Flatten(), nn.Linear(math.prod(input_shape), width),\n"
    "                         nn.ReLU(), nn.Linear(width, num_outputs))\n"
)


@pytest.fixture(scope="module")
def cli_run(repo_root, tmp_path_factory):
    """The digits job from the command line, as a user with their own model runs it: the
    model is `mymodels:tiny`, a file in the working directory, which the driver and both
    Ray Train workers import (the job's 2 workers: the worker group, not the driver)."""
    cwd = tmp_path_factory.mktemp("work")
    (cwd / "mymodels.py").write_text(USER_MODEL)
    out = raydl(
        "run",
        f"{repo_root}/jobs/digits_cnn.yaml",
        "model.arch=mymodels:tiny",
        "model.params={width: 64}",
        "train.epochs=4",
        "-o",
        "runs",
        cwd=cwd,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    (run_dir,) = (cwd / "runs").iterdir()
    return out, run_dir


def test_run_prints_epochs_and_test_metrics(cli_run):
    out, run_dir = cli_run
    assert "epoch   4" in out.stdout
    assert "test metrics" in out.stdout and "accuracy" in out.stdout
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["accuracy"] > 0.9
    assert f"{metrics['accuracy']:.4f}" in out.stdout
    assert "train.epochs" not in (run_dir / "spec.yaml").read_text()
    assert "epochs: 4" in (run_dir / "spec.yaml").read_text()


def test_user_model_from_the_working_directory(cli_run):
    _, run_dir = cli_run
    config = json.loads((run_dir / "checkpoints" / "best" / "model.json").read_text())
    assert config["arch"] == "mymodels:tiny" and config["params"] == {"width": 64}


def test_run_prints_nothing_but_raydls_own_lines(cli_run):
    out, run_dir = cli_run
    assert "" not in out.stdout.splitlines()  # no stray blank lines
    noise = ("(raylet)", "(pid=", "WARNING", "Warning", "LOAD REPORT", "Traceback")
    assert not [line for line in (out.stdout + out.stderr).splitlines() if any(n in line for n in noise)]
    listing = raydl("runs", str(run_dir.parent))
    row = next(line for line in listing.stdout.splitlines() if run_dir.name[:20] in line)
    accuracy = json.loads((run_dir / "metrics.json").read_text())["accuracy"]
    assert "succeeded" in row and f"accuracy {accuracy:.4f}" in row


def test_evaluate_reproduces_the_runs_metrics(cli_run):
    _, run_dir = cli_run
    # the model's own module must import, as it did for the run: from its directory
    out = raydl("evaluate", str(run_dir), cwd=run_dir.parent.parent)
    assert out.returncode == 0, out.stderr[-3000:]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert f"accuracy        │ {metrics['accuracy']:.4f}" in out.stdout


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def ray_head(tmp_path):
    """A real `ray start --head` with its own temp dir; stopped by killing its own
    processes (`ray stop` would stop every Ray on the machine)."""
    ray_bin = shutil.which("ray", path=str(Path(sys.executable).parent))
    port = _free_port()
    temp_dir = Path("/tmp") / f"raydl-e2e-{os.getpid()}-{port}"
    out = subprocess.run(
        [
            ray_bin,
            "start",
            "--head",
            "--node-ip-address=127.0.0.1",
            f"--port={port}",
            "--num-cpus=4",
            "--resources",
            json.dumps({"raydl_e2e_head": 1}),
            f"--temp-dir={temp_dir}",
            "--include-dashboard=false",
            "--disable-usage-stats",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    try:
        yield f"127.0.0.1:{port}"
    finally:
        subprocess.run(["pkill", "-f", str(temp_dir)], check=False)
        time.sleep(2)
        subprocess.run(["pkill", "-9", "-f", str(temp_dir)], check=False)
        shutil.rmtree(temp_dir, ignore_errors=True)


def test_run_joins_the_cluster_in_ray_address(repo_root, tmp_path, ray_head):
    # The head listens on loopback only; Ray's knob below keeps the driver from swapping
    # 127.0.0.1 for the machine's outward address when it resolves RAY_ADDRESS.
    out = raydl(
        "run",
        f"{repo_root}/jobs/digits_cnn.yaml",
        "train.epochs=2",
        "train.workers=1",  # joining is the point: one worker trains in the driver, on the head
        "-o",
        str(tmp_path),
        env={"RAY_ADDRESS": ray_head, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"},
    )
    assert out.returncode == 0, out.stderr[-3000:]
    (run_dir,) = tmp_path.iterdir()
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["ray_resources"].get("raydl_e2e_head") == 1  # the head's own resource


def test_unreachable_cluster_is_a_clear_error(repo_root, tmp_path):
    out = raydl(
        "run",
        f"{repo_root}/jobs/digits_cnn.yaml",
        "-o",
        str(tmp_path),
        env={"RAY_ADDRESS": f"127.0.0.1:{_free_port()}"},
        timeout=300,
    )
    assert out.returncode == 2, out.stderr[-2000:]
    assert "Traceback" not in out.stderr
    assert "cannot connect to the Ray cluster at 127.0.0.1:" in out.stderr
