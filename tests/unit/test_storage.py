"""cluster.storage: a path is the runs folder; a URI gets the run directory copied there
through pyarrow's filesystems (file:// here: the same code path as s3:// or gs://)."""

import pytest

from raydl.errors import RaydlError
from raydl.rundir import RunDir, publish, runs_root_for


def test_a_path_is_the_runs_root_and_a_uri_is_published_to(tmp_path):
    assert runs_root_for(str(tmp_path)) == str(tmp_path)
    assert runs_root_for("s3://bucket/runs") is None and runs_root_for(None) is None
    run = RunDir.create(tmp_path / "local", "job")
    run.write_json(run.metrics, {"test_accuracy": 0.9})
    (run.best_checkpoint).mkdir(parents=True)
    (run.best_checkpoint / "model.json").write_text("{}")
    uri = publish(run, f"file://{tmp_path}/remote/runs")
    assert uri == f"file://{tmp_path}/remote/runs/{run.path.name}"
    copied = tmp_path / "remote" / "runs" / run.path.name
    assert (copied / "metrics.json").read_text() == run.metrics.read_text()
    assert (copied / "checkpoints" / "best" / "model.json").is_file()


def test_an_unknown_filesystem_is_a_clear_error(tmp_path):
    run = RunDir.create(tmp_path, "job")
    with pytest.raises(RaydlError, match="cluster.storage: cannot write the run directory to nosuch://x"):
        publish(run, "nosuch://x")
