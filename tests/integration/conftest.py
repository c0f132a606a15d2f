"""The trained runs more than one integration module reads (each trained once per
session: Ray Train's fixed cost per run dominates the suite's time), on the session's one
real local Ray (``ray_cluster``, in ``tests/conftest.py``: tests/reliability shares it)."""

import pytest

import raydl
from raydl.spec import load_spec
from tests.integration.test_predict import table_frame, table_spec
from tests.integration.test_sources import digit_folder, spec_for


@pytest.fixture(scope="session")
def digits_run(ray_cluster, tmp_path_factory, repo_root):
    """The digits CNN job as it ships (test_train, test_report_pages), on one worker: it
    trains in the driver (no worker group to start, about 20 s and a first-batch wait on 2
    cores). Two-worker DDP on this job is what test_resume.py and tests/e2e prove."""
    spec = load_spec(f"{repo_root}/jobs/digits_cnn.yaml", ["train.workers=1"])
    return raydl.run(spec, runs_root=tmp_path_factory.mktemp("runs"))


@pytest.fixture(scope="session")
def image_run(ray_cluster, tmp_path_factory):
    """The image-folder job, trained: 3 digit classes of 16x16 PNGs, and one file that
    is not an image. Files are 16x16; the spec asks for 12x12: the preprocessor resizes.
    (test_sources, test_report_pages)"""
    folder = digit_folder(tmp_path_factory.mktemp("imgs") / "digits")
    (folder / "digit1" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nthis is not an image")
    spec = spec_for(
        {"type": "images", "path": str(folder)},
        model="cnn",
        image={"shape": [1, 12, 12]},
    )
    spec.train.epochs = 8
    spec.train.workers = 1  # trains in the driver: no worker group to start (about 20 s)
    spec.train.batch_size = 32
    spec.train.optimizer.lr = 3e-3
    return raydl.run(spec, runs_root=tmp_path_factory.mktemp("runs")), folder


@pytest.fixture(scope="session")
def bbc_run(ray_cluster, tmp_path_factory, repo_root):
    """The real BBC News job on a subset of the corpus (every topic: the builtin interleaves
    them), with EDA on the token ids of train batches. (test_text, test_report_pages)"""
    spec = load_spec(
        f"{repo_root}/jobs/bbc_news_text.yaml",
        [
            "data.source.limit=800",
            "train.epochs=6",
            "train.workers=1",  # in the driver: no worker group to start (about 20 s)
            "data.augment=[{type: random_deletion, p: 0.1}, {type: random_swap}, {type: random_insertion}]",
        ],
    )
    return raydl.run(spec, runs_root=tmp_path_factory.mktemp("runs"))


@pytest.fixture(scope="session")
def table_run(ray_cluster, tmp_path_factory):
    """A CSV with gaps, categories and outliers (test_predict.table_frame), trained one
    epoch: its run directory and the CSV. (test_predict, test_serve_kinds)"""
    path = tmp_path_factory.mktemp("table") / "animals.csv"
    table_frame().to_csv(path, index=False)
    return raydl.run(table_spec(path), runs_root=tmp_path_factory.mktemp("runs")).run_dir, path
