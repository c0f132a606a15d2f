"""report.html renders the data report's keys (the DATA REPORT contract), reads as text
(no Python dicts in its cells), draws what a practitioner looks at next, and refuses a
failed run; real runs' reports are opened in Chromium by tests/integration/test_report_pages.py."""

import json
import re
import shutil

import matplotlib.pyplot as plt
import numpy as np
import pytest

from raydl.report import RunFailed, build_report
from raydl.report.data import class_counts_plot, histograms_plot
from raydl.rundir import RunDir
from raydl.units import regression_units

DATA_REPORT = {
    "rows": 100,
    "split": {"rows": {"train": 70, "val": 15, "test": 15}},
    "steps": [
        {"name": "dedupe", "rows_in": 103, "rows_out": 100, "changed": {"dropped": 3}},
        {
            "name": "parse",
            "rows_in": 100,
            "rows_out": 100,
            "changed": {"unparseable_rows": 0, "examples": []},
        },
    ],
    "missing": {"a": 4},
    "duplicates": 3,
    "outliers": {"b": 2},
    "class_counts": {"before": {"0": 60, "1": 43}, "after": {"0": 57, "1": 43}},
    "features": {
        c: {
            "mean": 0.1,
            "std": 1.0,
            "min": -2.0,
            "max": 2.5,
            "quantiles": {"0.05": -1.6, "0.25": -0.6, "0.5": 0.1, "0.75": 0.7, "0.95": 1.7},
            "histogram": {"edges": [-2, -1, 0, 1, 2, 2.5], "counts": [5, 20, 40, 25, 10]},
        }
        for c in ("a", "b")
    },
}


def _cells(page: str) -> list[str]:
    return re.findall(r"<td[^>]*>(.*?)</td>", page, flags=re.S)


def _classification_run(path):
    """A 3-class run directory with every file a finished classification run writes."""
    path.mkdir()
    (path / "spec.yaml").write_text(
        "name: x\ndata:\n  source: {type: builtin, name: fashion_mnist}\n  task: classification\n"
        "tune: {mode: max}\n"
    )
    RunDir(path).mark("succeeded", task="classification")
    (path / "data_report.json").write_text(json.dumps(DATA_REPORT))
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 60)
    scores = rng.dirichlet(np.ones(3), 60)
    scores[np.arange(60), y] += 0.5
    scores /= scores.sum(1, keepdims=True)
    np.savez(path / "predictions.npz", y=y, y_pred=scores.argmax(1), scores=scores)
    classes = ["T-shirt/top", "Trouser", "Pullover"]
    metrics = {"n": 60, "accuracy": 0.8, "classes": classes, "confusion_matrix": np.eye(3).tolist()}
    metrics["per_class"] = [{"precision": 0.8, "recall": 0.7, "f1": 0.75, "support": 20}] * 3
    (path / "metrics.json").write_text(json.dumps(metrics))
    (path / "metrics.jsonl").write_text(
        "\n".join(
            json.dumps({"epoch": e, "train_loss": 1 / e, "val_loss": 1.1 / e, "val_accuracy": 0.5})
            for e in (1, 2)
        )
    )
    pixel = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAAAAAA6fptVAAAACklEQVR4nGNgAAAAAgABSK+kcQAAAABJRU5ErkJggg=="
    errors = {
        "task": "classification",
        "confused_pairs": [
            {
                "true": "Trouser",
                "predicted": "Pullover",
                "count": 2,
                "share_of_true": 0.1,
                "rows": [3],
                "row_ids": [9],
                "examples": [{"image_png": pixel}],
            },  # fmt: skip
        ],
        "worst": [
            {
                "id": 3,
                "row_id": 9,
                "true": "Trouser",
                "predicted": "Pullover",
                "p_true": 0.01,
                "p_predicted": 0.9,
                "example": {"image_png": pixel, "path": "trouser/00009.png"},
            },  # fmt: skip
        ],
    }
    (path / "errors.json").write_text(json.dumps(errors))
    (path / "tune").mkdir()
    trials = "trial_id,status,val_accuracy,config/train.optimizer.lr,config/model.params.dropout,config/opt\n"
    trials += "a,completed,0.8,0.001,0.1,adam\nb,completed,0.6,0.1,0.3,sgd\nc,error,,0.01,0.2,adam\n"
    (path / "tune" / "trials.csv").write_text(trials)
    (path / "tune" / "best.json").write_text(
        json.dumps({"val_accuracy": 0.8, "config": {"train.optimizer.lr": 0.001}})
    )
    return path


def test_data_report_contract_renders_and_images_decode(tmp_path, images):
    (tmp_path / "spec.yaml").write_text("name: x\n")
    (tmp_path / "data_report.json").write_text(json.dumps(DATA_REPORT))
    page = build_report(tmp_path).read_text()
    assert 'id="data"' in page
    for text in ("dedupe", "missing", "outliers", "class counts", "features"):
        assert text in page
    assert len(images(page)) == 2  # class counts, feature histograms
    # a run with none of these files still gets a page
    (tmp_path / "data_report.json").write_text(json.dumps({"rows": 5}))
    assert "raydl report" in build_report(tmp_path).read_text()


def test_no_table_cell_shows_a_python_dict_or_list(tmp_path):
    page = build_report(_classification_run(tmp_path / "run")).read_text()
    cells = _cells(page)
    assert cells and not [c for c in cells if "{'" in c or "['" in c or "{&#x27;" in c]
    assert "dropped 3" in page  # the dedupe step's change, as words
    # the parse step changed nothing: its cell says so instead of {'unparseable_rows': 0, ...}
    assert re.search(r"<td>parse</td><td>100</td><td>100</td><td>—</td>", page)


def test_classification_page_has_names_examples_calibration_and_trials(tmp_path, images):
    page = build_report(_classification_run(tmp_path / "run")).read_text()
    for sid in (
        "test-metrics",
        "data",
        "learning-curves",
        "confusion-matrix",
        "roc",
        "calibration",
        "errors",
        "search",
    ):
        assert f'<section id="{sid}">' in page, sid
    assert "T-shirt/top" in page and "Trouser" in page  # the data report's ids shown by name
    assert 'class="thumb"' in page and "trouser/00009.png" in page  # the example itself
    assert 'alt="parallel coordinates of the trials"' in page
    figures = images(page)
    assert len(figures) >= 8
    for img in figures:
        assert img.size == (1, 1) or np.ptp(np.asarray(img.convert("L"))) > 0  # not one flat colour


def test_histogram_grid_has_no_empty_axes_and_legends_stand_beside_bars():
    hist = [(f"f{i}", DATA_REPORT["features"]["a"]["histogram"]) for i in range(5)]
    fig = histograms_plot(hist)
    assert len(fig.axes) == 5  # a 2 x 4 grid keeps only the 5 drawn
    plt.close(fig)
    for n in (2, 20):
        counts = {g: {str(i): 10 + i for i in range(n)} for g in ("train", "val", "test")}
        fig = class_counts_plot(counts, {})
        fig.canvas.draw()
        ax = fig.axes[0]
        legend = ax.get_legend().get_window_extent()
        assert not legend.overlaps(ax.get_window_extent())  # the legend covers no bar
        assert len(ax.get_yticklabels()) == n
        plt.close(fig)


def test_regression_page_says_the_units_and_draws_residuals(tmp_path, images):
    run = tmp_path / "run"
    (run / "preprocessor").mkdir(parents=True)
    (run / "spec.yaml").write_text("name: r\ndata:\n  task: regression\n  label: progression\n")
    (run / "preprocessor" / "preprocessor.json").write_text(
        json.dumps({"target_center": 150.0, "target_scale": 77.0})
    )
    (run / "metrics.json").write_text(json.dumps({"n": 20, "mae": 40.0, "rmse": 50.0, "r2": 0.4}))
    y = np.linspace(50, 300, 20)
    np.savez(run / "predictions.npz", y=y, y_pred=y + np.sin(y) * 30)
    (run / "metrics.jsonl").write_text(
        json.dumps({"epoch": 1, "train_loss": 0.9, "val_loss": 0.8, "val_mae": 45.0})
    )
    page = build_report(run).read_text()
    assert "standardized target (progression − 150) / 77" in page
    assert "in progression&#x27;s own units" in page
    assert '<section id="residuals">' in page
    assert len(images(page)) == 2  # learning curves, residuals


def test_units_sentence():
    text = regression_units("target", 152.1, 77.09, "huber")
    assert "(huber: train_loss, val_loss) is on the standardized target (target − 152.1) / 77.09" in text
    assert "in target's own units" in text


def test_a_failed_run_gets_what_failed_not_a_page(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "spec.yaml").write_text("name: x\n")
    RunDir(run).mark("failed", stage="data", error="DataError: data.source.path: 'x.csv' does not exist")
    with pytest.raises(RunFailed, match=r"failed in its data stage: DataError: data.source.path") as e:
        build_report(run)
    assert e.value.exit_code == 1
    assert not (run / "report.html").exists()


def test_chromium_opens_the_page(tmp_path, chromium_dom):
    assert shutil.which("chromium"), "needs Debian's chromium on PATH (make setup installs it)"
    run = tmp_path / "run"
    run.mkdir()
    (run / "spec.yaml").write_text("name: x\n")
    (run / "data_report.json").write_text(json.dumps(DATA_REPORT))
    dom = chromium_dom(build_report(run), tmp_path)
    assert '<section id="data">' in dom and "raydl report" in dom
