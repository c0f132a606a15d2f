"""Search under faults: of two trials, one's process is killed mid-trial (SIGKILL), the
other raises at every step. With ``tune.max_failures: 1`` the killed trial restarts from its last
checkpoint and completes; the raising one fails after its retry; the search finishes,
evaluates the best of the surviving trials, and the run says which trial failed and why
(metrics.json, tune/best.json and trials.csv, the report, the terminal)."""

import json

import pandas as pd
from rich.console import Console

import raydl
from raydl.progress import Display
from tests.reliability.faulty import search_spec


def test_a_crashed_trial_is_retried_a_failing_one_is_reported_and_the_search_finishes(ray_cluster, tmp_path):
    marker = tmp_path / "killed-once"
    console = Console(record=True, width=200)
    result = raydl.run(search_spec(marker), runs_root=tmp_path / "runs", display=Display(console))
    assert marker.is_file(), "the 'once' trial never reached epoch 2: nothing was killed"

    table = pd.read_csv(result.run_dir / "tune" / "trials.csv").set_index("config/model.params.crash")
    # killed in epoch 2, restarted from epoch 1's checkpoint, finished both epochs
    assert table.loc["once", "status"] == "completed" and table.loc["once", "retries"] == 1
    assert table.loc["once", "epochs"] == 2
    assert table.loc["always", "status"] == "error" and table.loc["always", "retries"] == 1
    assert table.loc["always", "error"].startswith("RuntimeError: injected fault")
    assert "\n" not in table.loc["always", "error"]

    epochs = [json.loads(x) for x in (result.run_dir / "tune" / "epochs.jsonl").read_text().splitlines()]
    once = [r for r in epochs if r["trial_id"] == table.loc["once", "trial"]]
    assert [r["epoch"] for r in once] == [1, 2] and once[1]["resumed_from_epoch"] == 1, once
    crashes = [json.loads(x) for x in (result.run_dir / "tune" / "failures.jsonl").read_text().splitlines()]
    killed = [c for c in crashes if c["trial_id"] == table.loc["once", "trial"]]
    assert len(killed) == 1 and killed[0]["retried"] and "died" in killed[0]["error"].lower(), killed

    best = json.loads((result.run_dir / "tune" / "best.json").read_text())
    assert best["config"]["model.params.crash"] == "once"  # the one trial that survived
    assert best["failed"] == [{"trial": table.loc["always", "trial"], "error": table.loc["always", "error"]}]
    assert result.metrics["search"] == {
        "trials": 2,
        "failed": 1,
        "retries": 2,
        "failures": best["failed"],
    }
    assert 0 < result.metrics["accuracy"] <= 1  # the chosen trial was evaluated on test
    out = console.export_text()
    assert "search: 1 of 2 trials failed; the best of the other 1 was chosen" in out, out
    assert "RuntimeError: injected fault" in out
    page = (result.run_dir / "report.html").read_text()
    assert "1 of 2 trials failed" in page and "injected fault" in page
