"""One raw-row → prediction path, on a real local Ray: raw test rows read straight from the
source files reproduce each run's predictions.npz through the Predictor (a CSV with gaps,
categories and outliers; digits — BBC News text in test_text.py, a PNG folder in
test_sources.py); the Predictor loads and runs with Ray blocked; `raydl predict` writes
predictions and the failed rows; the preprocessor is fitted on train rows only.

Runs are tiny (one epoch, one worker): exactness needs no accuracy."""

import asyncio
import json
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
import sklearn.datasets
from typer.testing import CliRunner

import raydl
from raydl.cli import app
from raydl.data.prepare import prepare_data
from raydl.errors import DataError, RequestError
from raydl.spec import validate_spec
from tests.predictions import check_exact

pytestmark = pytest.mark.integration

TRAIN = {"workers": 1, "cpus_per_worker": 0.5, "epochs": 1, "batch_size": 32}
MISSING = {"a": "median", "b": "mean", "c": "mean", "color": "most_frequent", "city": "most_frequent"}


def table_frame(n: int = 360, seed: int = 0) -> pd.DataFrame:
    """Gaps as a user's CSV has them — empty numeric and category cells, empty labels —
    a value that is not a number, outliers, and a category too wide for one-hot."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    f = pd.DataFrame(
        {
            "id": np.arange(1000, 1000 + n),
            "t": np.arange(n),  # a time column (the time split's test rows are the latest)
            "a": (rng.normal(size=n) + y).round(4).astype(object),
            "b": (rng.normal(size=n) - y).round(4).astype(object),
            "c": rng.normal(size=n).round(4),
            "color": rng.choice(["red", "green", "blue"], n).astype(object),
            "city": [f"city{i}" for i in rng.integers(0, 9, n)],
            "kind": np.asarray(["cat", "dog", "eel"], dtype=object)[y],
        }
    )
    f.loc[5:19, "a"] = ""  # numeric gaps, filled with the train median
    f.loc[20:31, "color"] = ""  # category gaps: counted, filled, never a category ""
    f.loc[40:43, "c"] = 60.0  # outliers, clipped to bounds fitted on train
    f.loc[50:52, "kind"] = ""  # rows without a label: dropped and counted
    f.loc[60, "b"] = "n/a?"  # not a number: dropped and counted
    return f


def table_spec(path, **data):
    return validate_spec(
        {
            "name": "table",
            "seed": 1,
            "data": {
                # the spec calls the label `animal`; the file, and a request, say `kind`
                "source": {"type": "csv", "path": str(path), "rename": {"kind": "animal"}},
                "label": "animal",
                "id_column": "id",
                "clean": {
                    "missing": MISSING,
                    "outliers": {"method": "zscore", "threshold": 3.0, "action": "clip", "columns": ["c"]},
                },
                "features": {
                    "columns": ["a", "b", "c", "color", "city"],
                    "categorical": "onehot",
                    "max_onehot": 4,
                },
                **data,
            },
            "model": {"arch": "mlp", "params": {"hidden": [16]}},
            "train": TRAIN,
        }
    )


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return tmp_path_factory.mktemp("runs")


def test_table_rows_from_the_csv_reproduce_the_run(table_run):
    run_dir, path = table_run
    report = json.loads((run_dir / "data_report.json").read_text())
    steps = {s["name"]: s for s in report["steps"]}
    # gaps are gaps: counted per column, the label's too; never a class or category ""
    assert report["missing"] == {"a": 15, "b": 0, "c": 0, "color": 12, "city": 0}
    assert report["missing_label"] == 3 and steps["label"]["changed"] == {"no_label": 3}
    assert steps["parse"]["changed"]["unparseable_rows"] == 1
    assert report["class_counts"]["train"].keys() == {"cat", "dog", "eel"}
    pre = raydl.load_preprocessor(run_dir)
    assert "" not in pre.categories["color"] and pre.fill_values["color"] in ("red", "green", "blue")
    assert pre.clip_bounds["c"][1] < 60 and steps["outliers"]["fitted_on"] == "train"

    saved = np.load(run_dir / "predictions.npz")
    frame = pd.read_csv(path).set_index("id").loc[saved["id"]].reset_index()
    predictor = raydl.Predictor.from_run(run_dir)
    check_exact(predictor, frame, run_dir)  # pandas: NaN gaps, the file's own column names
    arrow = pacsv.read_csv(path)  # Arrow: empty strings in text columns, nulls in numbers
    check_exact(
        predictor, arrow.take(pd.Index(arrow.column("id").to_pylist()).get_indexer(saved["id"])), run_dir
    )
    check_exact(predictor, frame.to_dict("records"), run_dir)


def test_bad_rows_are_named_and_nothing_else_is_lost(table_run):
    predictor = raydl.Predictor.from_run(table_run[0])
    good = {"a": 1.0, "b": -0.5, "c": 0.1, "color": "red", "city": "city3"}
    assert predictor.predict({**good, "a": None}) == predictor.predict({**good, "a": "  "})  # filled alike
    rows = [good, {**good, "c": "warm"}, {**good, "colr": "red"}, {**good, "city": [1, 2]}]
    with pytest.raises(RequestError) as e:
        predictor.predict(rows)
    assert e.value.lines() == [
        "row 1, field 'c': not a number (got 'warm')",
        "row 2, field 'colr': unknown field; did you mean 'color'? the model reads a, b, c, city, color "
        "(got 'red')",
        "row 3, field 'city': expected one category value (got [1, 2])",
    ]
    answers, errors = predictor.predict(rows, errors="collect")
    assert answers[0] == predictor.predict(good) and answers[1:] == [None, None, None] and len(errors) == 3
    with pytest.raises(RequestError, match="no rows given"):
        predictor.predict([])


def test_the_train_category_counts_feed_a_replicas_drift_window(table_run):
    """data_report.json's category counts are the train split's (gaps filled, every value the
    encoder knows); a serve replica — its class, without Serve — watches its rows'
    categories against them, and a category all of whose rows are one value drifts."""
    from raydl.serve.app import ModelReplica
    from raydl.spec.serve import ServeSpec

    run_dir, _ = table_run
    report = json.loads((run_dir / "data_report.json").read_text())
    pre = raydl.load_preprocessor(run_dir)
    train = report["split"]["rows"]["train"]
    for c in ("color", "city"):
        counts = report["category_counts"][c]
        assert counts["count"] == train and sum(counts["counts"].values()) + counts["other"] == train
        assert set(counts["counts"]) == set(pre.categories[c]) and counts["other"] == 0

    replica = ModelReplica(str(run_dir), ServeSpec(batching={"enabled": False}).model_dump(mode="json"))
    rng = np.random.default_rng(0)
    rows = [
        {"a": float(a), "b": float(b), "c": float(c), "color": "blue", "city": f"city{k}"}
        for a, b, c, k in zip(*rng.normal(size=(3, 200)), rng.integers(0, 9, 200))
    ]
    asyncio.run(replica._answers(rows))
    features = asyncio.run(replica.drift())["features"]
    assert features["color"]["kind"] == "category" and features["color"]["drift"]
    assert features["city"]["ready"] and features["city"]["rows"] == 200


def test_digits_rows_from_sklearn_reproduce_the_run(ray_cluster, runs):
    spec = validate_spec(
        {
            "name": "digits",
            "data": {"source": {"type": "builtin", "name": "digits"}, "label": "target"},
            "model": {"arch": "cnn", "params": {"channels": [4, 8], "hidden": 16}},
            "train": TRAIN,
        }
    )
    run_dir = raydl.run(spec, runs_root=runs).run_dir
    saved = np.load(run_dir / "predictions.npz")
    images = sklearn.datasets.load_digits().images  # (N, 8, 8), as the package ships them
    check_exact(raydl.Predictor.from_run(run_dir), [{"x": images[i]} for i in saved["id"]], run_dir)


def test_the_predictor_loads_and_runs_with_ray_blocked(table_run):
    code = textwrap.dedent(f"""
        import sys
        sys.modules["ray"] = None  # `import ray` fails from here on
        import numpy as np, pandas as pd, raydl
        p = raydl.Predictor.from_run({str(table_run[0])!r})
        saved = np.load({str(table_run[0] / "predictions.npz")!r})
        frame = pd.read_csv({str(table_run[1])!r}).set_index("id").loc[saved["id"]].reset_index()
        labels = [a["label"] for a in p.predict(frame)]
        print(labels == [p.classes[i] for i in saved["y_pred"]])
        print("ray" in sys.modules and sys.modules["ray"] is None)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", "True"]


def test_raydl_predict_writes_predictions_and_failed_rows(table_run, tmp_path):
    run_dir, path = table_run
    frame = pd.read_csv(path)
    frame["a"] = frame["a"].astype(object)
    frame.loc[3, "a"] = "lots"  # a row that fails (as row 60 does: b is 'n/a?'), with the reason
    frame["note"] = "passed through"
    csv = tmp_path / "in.csv"
    frame.to_csv(csv, index=False)
    out = tmp_path / "out" / "pred.parquet"
    moved = path.rename(path.with_name("moved.csv"))  # batch inference needs no training data
    try:
        result = CliRunner().invoke(app, ["predict", str(run_dir), "--input", str(csv), "--output", str(out)])
    finally:
        moved.rename(path)
    assert result.exit_code == 0, result.output
    assert f"predicted {len(frame) - 2:,} of {len(frame):,} rows → {out}" in result.output
    assert "failed 2 rows" in result.output
    assert "(first: row 3: field 'a': not a number (got 'lots'))" in result.output
    assert "columns the model does not read, passed through: note" in result.output
    got = pq.read_table(out).to_pandas()
    assert list(got.columns[: len(frame.columns)]) == list(frame.columns)
    assert [c for c in got.columns if c.startswith("pred_")] == [
        "pred_label",
        "pred_probability",
        "pred_p_cat",
        "pred_p_dog",
        "pred_p_eel",
    ]
    direct = raydl.Predictor.from_run(run_dir).predict(frame.drop(index=[3, 60]).drop(columns="note"))
    assert got["pred_label"].tolist() == [a["label"] for a in direct]  # input order, same answers
    errors = pq.read_table(tmp_path / "out" / "pred.parquet.errors.parquet").to_pandas()
    assert errors[["row", "id", "error"]].to_dict("records") == [
        {"row": 3, "id": 1003, "error": "field 'a': not a number (got 'lots')"},
        {"row": 60, "id": 1060, "error": "field 'b': not a number (got 'n/a?')"},
    ]


def test_preprocessor_is_fitted_on_train_rows_only(ray_cluster, tmp_path):
    """Changing only test rows (the latest, by the time split) — new extremes, new gaps,
    a new category — leaves every byte of the fitted preprocessor as it was."""
    frame = table_frame()
    split = {"method": "time", "column": "t", "val": 0.15, "test": 0.15}
    before = tmp_path / "before.csv"
    frame.to_csv(before, index=False)
    first = prepare_data(table_spec(before, split=split, cache="never"))
    first.preprocessor.save(tmp_path / "pre1")

    test_rows = frame.index[frame["t"] >= first.rule.test_cut[0]]
    assert len(test_rows) == first.report["split"]["rows"]["test"] >= 40
    changed = frame.astype({"c": object})
    changed.loc[test_rows[:10], "a"] = 1e6
    changed.loc[test_rows[10:20], "c"] = ""
    changed.loc[test_rows[20:30], "color"] = "purple"
    changed.loc[test_rows[30:40], "b"] = -1e6
    after = tmp_path / "after.csv"
    changed.to_csv(after, index=False)
    second = prepare_data(table_spec(after, split=split, cache="never"))
    assert second.report["split"]["rows"] == first.report["split"]["rows"]
    assert second.report["missing"]["c"] == first.report["missing"]["c"] + 10
    second.preprocessor.save(tmp_path / "pre2")
    files = sorted(p.name for p in (tmp_path / "pre1").iterdir())
    assert files == sorted(p.name for p in (tmp_path / "pre2").iterdir())
    for name in files:
        assert (tmp_path / "pre1" / name).read_bytes() == (tmp_path / "pre2" / name).read_bytes(), name


def test_labels_that_are_gaps_and_limits_that_leave_few_classes(ray_cluster, tmp_path):
    rng = np.random.default_rng(3)
    n = 300
    frame = pd.DataFrame(
        {"x": rng.normal(size=n), "y": np.repeat(["a", "b", "c"], n // 3)}
    )  # sorted by label
    path = tmp_path / "sorted.csv"
    frame.to_csv(path, index=False)

    def spec(source=None, **data):
        source = {"type": "csv", "path": str(path)} | (source or {})
        data = {"source": source, "label": "y", "cache": "never", **data}  # no splits kept: counts only
        return validate_spec({"name": "s", "data": data, "model": {"arch": "mlp"}})

    first = prepare_data(spec({"limit": 105}))
    (warning,) = first.report["warnings"]
    assert warning == (
        "data.source.limit: the first 105 rows hold 2 of the source's 3 classes (none of 'c') and leave "
        "1 class(es) with fewer than 10 rows: 'b' (5) (the first rows of a file sorted by label hold few "
        "classes: try data.source.subset: random)"
    )
    # a builtin (iris: 50 rows per class, in class order) knows its classes without a
    # second read of the source
    iris = {"source": {"type": "builtin", "name": "iris", "limit": 60}, "label": "target", "cache": "never"}
    builtin = prepare_data(validate_spec({"name": "i", "data": iris, "model": {"arch": "mlp"}}))
    assert builtin.report["warnings"][0].startswith(
        "data.source.limit: the first 60 rows hold 2 of the source's 3 classes (none of '2')"
    )
    drawn = prepare_data(spec({"limit": 105, "subset": "random"}))
    assert (
        drawn.report["warnings"] == []
        and min(
            sum(drawn.report["class_counts"][s].get(c, 0) for s in ("train", "val", "test")) for c in "abc"
        )
        >= 20
    )
    with pytest.raises(
        DataError, match=r"needs 2 or more classes; column 'y' holds only 'a' in the 50 rows left"
    ):
        prepare_data(spec({"limit": 50}))

    frame.loc[::7, "y"] = ""
    frame.to_csv(path, index=False)
    with pytest.raises(DataError, match=r"data.label: 43 row\(s\) have no label 'y' \(empty or NaN\)"):
        prepare_data(spec(clean={"missing_label": "error"}))
    frame["y"] = ""
    frame.to_csv(path, index=False)
    with pytest.raises(DataError, match=r"every row's label 'y' is a gap \(empty or NaN: 300 rows\)"):
        prepare_data(spec())

    # a regression target with NaN: counted and dropped, not a NaN loss epochs later
    frame["y"] = rng.normal(size=n)
    frame.loc[::10, "y"] = np.nan
    frame.to_csv(path, index=False)
    regression = prepare_data(spec(task="regression", split={"method": "random"}))
    assert regression.report["missing_label"] == 30 and regression.report["rows"] == 270
