"""The reports of real runs, as a user opens them: a classification (digits), a regression
(diabetes), an image folder and a text run (the first three the suite's own session runs,
the regression one epoch of its own), opened in headless Chromium: its DOM parsed, a
screenshot drawn, every figure decoded and not one flat colour, no Python dict in any cell."""

import base64
import html
import io
import json
import re

import numpy as np
import pytest
from PIL import Image

import raydl
from raydl.spec import load_spec

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def runs(digits_run, image_run, bbc_run, tmp_path_factory, repo_root):
    """Four finished runs: the suite's own digits, image-folder and BBC runs (session
    fixtures, trained once for every module that reads them) and one small regression,
    trained here for one epoch — no other module trains diabetes."""
    spec = load_spec(
        f"{repo_root}/jobs/diabetes_mlp.yaml",
        ["train.epochs=1", "train.scheduler.warmup_epochs=0", "train.early_stopping=null", "train.workers=1"],
    )
    diabetes = raydl.run(spec, runs_root=tmp_path_factory.mktemp("runs")).run_dir
    return {
        "digits": digits_run.run_dir,
        "diabetes": diabetes,
        "images": image_run[0].run_dir,
        "text": bbc_run.run_dir,
    }


SECTIONS = {
    "digits": [
        "test-metrics",
        "data",
        "learning-curves",
        "confusion-matrix",
        "roc",
        "calibration",
        "per-class",
    ],
    "diabetes": ["test-metrics", "data", "learning-curves", "residuals"],
    "images": ["test-metrics", "data", "confusion-matrix", "calibration"],
    "text": ["test-metrics", "data", "confusion-matrix", "calibration"],
}


@pytest.fixture
def page(runs, tmp_path, chromium_dom, chromium_screenshot):
    """A run's report as Chromium shows it, checked the same way for every kind of run;
    returns its DOM and the run's errors.json."""

    def check(name: str) -> tuple[str, dict]:
        run_dir = runs[name]
        html_text = (run_dir / "report.html").read_text()
        dom = chromium_dom(run_dir / "report.html", tmp_path)
        for sid in [*SECTIONS[name], "errors"]:
            assert f'<section id="{sid}">' in dom, sid
        cells = re.findall(r"<td[^>]*>(.*?)</td>", dom, flags=re.S)
        assert cells and not [c for c in cells if "{'" in c or "{&#x27;" in c or "['" in c]
        embedded = r'<img class="(?:figure|thumb)" alt="([^"]*)" src="data:image/png;base64,([^"]+)"'
        figures = re.findall(embedded, html_text)
        assert len(figures) >= len(SECTIONS[name]) - 2  # the tables' sections draw no figure
        for alt, data in figures:
            img = np.asarray(Image.open(io.BytesIO(base64.b64decode(data))).convert("L"))
            assert np.ptp(img) > 0, f"figure {alt!r} is one flat colour"
        shot = chromium_screenshot(run_dir / "report.html", tmp_path, tmp_path / "page.png", height=3000)
        pixels = np.asarray(Image.open(shot).convert("L"))
        assert np.ptp(pixels) > 0 and (pixels < 128).mean() > 0.01  # text and figures drawn, not blank
        return dom, json.loads((run_dir / "errors.json").read_text())

    return check


def test_classification_report(page):
    dom, errors = page("digits")
    assert all("image_png" in w["example"] for w in errors["worst"])  # digits' pixels, as thumbnails
    assert 'class="thumb"' in dom


def test_regression_report_says_its_units(page):
    dom, errors = page("diabetes")
    assert "on the standardized target (target − " in dom and "in target's own units" in dom
    assert set(errors["worst"][0]["example"]["fields"]) >= {"age", "bmi"}  # the table row's fields


def test_image_folder_report_shows_files(page):
    dom, errors = page("images")
    example = errors["worst"][0]["example"]
    assert example["path"].startswith("digit") and "image_png" in example
    assert example["path"] in dom and "digit1" in dom


def test_text_report_shows_the_articles(page):
    dom, errors = page("text")
    text = errors["worst"][0]["example"]["text"]
    assert 20 < len(text) <= 300 and html.escape(text[:40], quote=False) in dom
    assert "business" in dom  # the topics by name
