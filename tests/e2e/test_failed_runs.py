"""A run that fails says so: its manifest (status, stage, error), `raydl report` (what
failed, exit 1, no page) and `raydl runs` (the runs folder's listing)."""

import json

import pytest

from tests.e2e.test_cli import raydl

pytestmark = pytest.mark.e2e


def test_a_run_that_fails_in_data_preparation_says_so_everywhere(repo_root, tmp_path):
    runs, empty = tmp_path / "runs", tmp_path / "no-idx-files"
    empty.mkdir()
    out = raydl(
        "run", f"{repo_root}/jobs/fashion_mnist_cnn.yaml", f"data.source.path={empty}", "-o", str(runs)
    )
    assert out.returncode == 2 and "Traceback" not in out.stderr
    (run_dir,) = runs.iterdir()
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "failed" and manifest["stage"] == "data"
    assert manifest["error"].startswith("DataError: data.source.path: Fashion-MNIST file")

    report = raydl("report", str(run_dir))
    assert report.returncode == 1 and "Traceback" not in report.stderr
    assert "the run failed in its data stage: DataError: data.source.path" in report.stderr
    assert not (run_dir / "report.html").exists()

    listing = raydl("runs", str(runs))
    assert listing.returncode == 0
    row = next(line for line in listing.stdout.splitlines() if run_dir.name[:20] in line)
    assert "failed" in row and "in data: DataError: data.source.path" in row and "classification" in row
