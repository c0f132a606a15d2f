"""report.html renders the data report's keys (the DATA REPORT contract), and what it
embeds decodes; the full run's report is opened in Chromium by the search test."""

import json
import shutil

from raydl.report import build_report

DATA_REPORT = {
    "rows": 100,
    "split": {"rows": {"train": 70, "val": 15, "test": 15}},
    "steps": [{"name": "dedupe", "rows_in": 103, "rows_out": 100, "changed": {"dropped": 3}}],
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


def test_chromium_opens_the_page(tmp_path, chromium_dom):
    assert shutil.which("chromium"), "needs Debian's chromium on PATH (make setup installs it)"
    run = tmp_path / "run"
    run.mkdir()
    (run / "spec.yaml").write_text("name: x\n")
    (run / "data_report.json").write_text(json.dumps(DATA_REPORT))
    dom = chromium_dom(build_report(run), tmp_path)
    assert '<section id="data">' in dom and "raydl report" in dom
