"""`raydl runs`: the runs of a runs folder, newest first, with status, task, metric, time."""

import json

import pytest

from raydl.errors import RaydlError
from raydl.rundir import RunDir
from raydl.runs import list_runs, main_metric


def _run(root, name, task, created, status=None, metrics=None, **manifest):
    run = root / name
    run.mkdir()
    (run / "spec.yaml").write_text(f"name: {name}\ndata:\n  task: {task}\n")
    if status:
        RunDir(run).mark(status, **manifest)
        m = json.loads((run / "manifest.json").read_text()) | {"created": created}
        (run / "manifest.json").write_text(json.dumps(m))
    if metrics:
        (run / "metrics.json").write_text(json.dumps(metrics))
    return run


def test_runs_are_listed_newest_first_with_status_task_and_main_metric(tmp_path):
    _run(tmp_path, "a", "classification", "2026-12-01T10:00:00", "succeeded", {"accuracy": 0.9, "n": 5})
    _run(
        tmp_path, "b", "regression", "2026-12-02T09:00:00", "failed", None, stage="data", error="DataError: x"
    )
    _run(
        tmp_path, "c", "regression", "2026-12-01T12:00:00", "succeeded", {"mse": 4.0, "rmse": 2.0, "r2": 0.5}
    )
    (tmp_path / "not-a-run").mkdir()
    runs = list_runs(tmp_path)
    assert [r.path.name for r in runs] == ["b", "c", "a"]
    b, c, a = runs
    assert (b.status, b.task, b.stage, b.error, b.main_metric) == (
        "failed",
        "regression",
        "data",
        "DataError: x",
        None,
    )
    assert c.main_metric == ("r2", 0.5) and a.main_metric == ("accuracy", 0.9)
    assert a.created == "2026-12-01T10:00:00"


def test_a_run_from_before_statuses_is_judged_by_its_files(tmp_path):
    _run(tmp_path, "old", "classification", "", metrics={"accuracy": 0.5})
    _run(tmp_path, "half", "classification", "")
    status = {r.path.name: r.status for r in list_runs(tmp_path)}
    assert status == {"old": "succeeded", "half": "unknown"}


def test_mark_keeps_the_manifest_and_drops_an_old_failure(tmp_path):
    run = RunDir(tmp_path)
    run.write_json(run.manifest, {"seed": 3})
    run.mark("failed", stage="train", error="boom")
    run.mark("running")
    m = json.loads(run.manifest.read_text())
    assert m["seed"] == 3 and m["status"] == "running" and "stage" not in m and "error" not in m


def test_main_metric_and_a_missing_folder():
    assert main_metric({"perplexity": 12.0, "test_loss": 2.5}) == ("perplexity", 12.0)
    assert main_metric({"n": 3}) is None
    with pytest.raises(RaydlError, match="no such runs folder"):
        list_runs("/nonexistent/runs")
