"""The reports of real runs, as a user opens them: a classification (digits), a regression
(diabetes), an image folder and a text run, each trained for one epoch on a small subset,
then opened in headless Chromium — its DOM parsed, a screenshot drawn, every figure
decoded and not one flat colour, no Python dict in any table cell."""

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
from tests.integration.test_sources import digit_folder

pytestmark = pytest.mark.integration

# one epoch, small subsets: the page is under test here, not the model
QUICK = ["train.epochs=1", "train.scheduler.warmup_epochs=0", "train.early_stopping=null"]


@pytest.fixture(scope="module")
def runs(ray_cluster, tmp_path_factory, repo_root):
    """Four finished runs, trained once for the module."""
    root = tmp_path_factory.mktemp("runs")
    folder = digit_folder(tmp_path_factory.mktemp("imgs") / "digits", per_class=30)
    jobs = {
        "digits": ("digits_cnn.yaml", []),
        "diabetes": ("diabetes_mlp.yaml", ["train.scheduler.warmup_epochs=0"]),
        "images": ("fashion_mnist_images.yaml", [f"data.source.path={folder}", "data.image.shape=[1,12,12]"]),
        "text": ("bbc_news_text.yaml", ["data.source.limit=150", "data.text.max_length=64"]),
    }
    out = {}
    for name, (job, extra) in jobs.items():
        spec = load_spec(f"{repo_root}/jobs/{job}", QUICK + extra)
        out[name] = raydl.run(spec, runs_root=root).run_dir
    return out


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
